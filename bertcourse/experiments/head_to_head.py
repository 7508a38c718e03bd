"""ELMo vs GPT vs BERT at equal budget: the head-to-head experiment of chapter 08 (``run``), resumable.

Its command line is ``python -m bertcourse.compare --preset {tiny,course,full,label-budget} --seeds N --out DIR``.

The experiment compares *rows* (``experiments.setup.ROWS``): a pre-training recipe (``registry.VARIANTS``:
a model family, its config changes, its objective and masking rate) and the way fine-tuning uses it. The
main rows are ELMo (forward + backward LM, used as frozen features under a learned scalar mix, as in the
ELMo paper), GPT (left-to-right LM) and BERT (masked LM + next-sentence prediction on GPT's very network,
without the causal mask); the others are BERT's Table 5 ablations and the paper's own BERT block. For
every seed, each variant is pre-trained once on the same sequences, with the same tokenizer, steps, batch,
optimizer and schedule (``experiments.setup``), built by ``bertcourse.registry`` and trained by the one
engine, ``bertcourse.engine.train``. Then it is measured:

1. **cloze by cue side** (``experiments.cloze``): fill a blank decided by a cue on the ``left``, the
   ``right``, ``far`` to the left, or on ``both`` sides jointly, with each model's own LM head, during
   pre-training too (the curve);
2. **fine-tuning** (``experiments.finetune``) on the preset's toy tasks under one head, overall and by cue;
3. **pre-training gain** (main rows): the same fine-tuning from random initialisation;
4. **measured context visibility** (``experiments.influence``): the influence matrix of the trained encoder;
5. **deep bidirectionality** (``experiments.interaction``): the interaction of the two sides at the
   `both` blank, and a frozen linear and/but probe of it;
6. **cost** (``experiments.cost``): parameters, pre-training time, tokens/s and FLOPs, forward time vs length.

``--jobs`` runs that many (variant, seed) pairs at once, each in its own process with an equal share of the
threads (default: one per CPU core on a CPU, 1 on a GPU). Each pair is seeded on its own, so at the same
number of threads its records do not depend on the worker that ran them (tested: two workers give the
records of one process). DIR receives ``runs/{row}-seed{seed}.json`` (one per finished row and seed: a
rerun skips them, so an interrupted run resumes), then ``results.json``, ``results.md`` (the tables) and
PNG plots.

``results.json`` schema (every ``stat`` is ``{"mean": float, "std": float, "n": int, "ci95": [lo, hi]}`` over
seeds, std the sample standard deviation (0 for one seed), ci95 the t-interval of the mean (null for one
seed); accuracies in [0, 1]; cue in ``left``, ``right``, ``far``, ``both``)::

    {
      "preset": str, "config": {Preset fields}, "seeds": [int], "device": str, "command": str,
      "models": {
        row (a key of ROWS: "elmo", "gpt", "bert", "bert-no-nsp", ...): {
          "variant": str, "use": "finetune" | "features" | "bilstm",   # the row's recipe and fine-tuning
          "parameters": int,                       # of the pre-training model, tied weights once
          "config": {model config fields}, "seeds": [int],
          "cloze": {cue: stat},                    # accuracy
          "cloze_curve": {step: {cue: stat}},      # the same during pre-training: step "0", then every tenth
          "cloze_sentence": {cue: stat},           # GPT's family only: scored by the whole sentence's probability
          "finetune": {task: stat + {"by_cue": {cue: stat}}},         # from the pre-trained weights
          "finetune_random": {task: stat + {"by_cue": {cue: stat}}},  # main rows: same steps, random init
          "pretraining_gain": {task: stat},        # main rows: finetune - finetune_random, per seed
          "pretrain": {"steps": int, "tokens": int, "flops": float, "seconds": stat, "tokens_per_second": stat,
                       "loss_start": stat, "loss_end": stat},
          "forward_ms": {T: stat},                 # encode() of a (8, T) batch, median of 3
          "influence": {part: {"tokens": [str], "matrix": [[float]] (T x T, mean over seeds),
                               "left": stat, "right": stat}},  # part "all"; ELMo also "forward", "backward"
          "interaction": stat,   # relative joint-context interaction at the `both` blank (experiments.interaction)
          "probe": stat,         # held-out accuracy of a frozen linear and/but probe on that blank
        }
      },
      "paired": {"bert - " + row: {"seeds": [int], "cloze": {cue: stat}, "finetune": {task: stat}}},
                                                   # per-seed differences, BERT minus each other row
      "chance": {"cloze": {cue: float}, "finetune": {task: float},    # majority-class share of the test items
                 "finetune_by_cue": {task: {cue: float}}},
      "items": {"cloze": {cue: int}, "finetune": {task: {"train": int, "test": int}}}
    }

Tasks: ``sentiment``, ``acceptability``, ``pos`` (the tag of each item's ambiguous word).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bertcourse.data.toylang import CLOZE_CUES, ClozeItem, TaskItem
from bertcourse.device import get_device, resolve_device, seed_everything
from bertcourse.engine import train
from bertcourse.engine.flops import flops_per_token
from bertcourse.experiments.cloze import cloze_accuracy
from bertcourse.experiments.cost import forward_time
from bertcourse.experiments.finetune import finetune, task_items
from bertcourse.experiments.influence import model_influence, side_shares
from bertcourse.experiments.interaction import cloze_interaction, cloze_probe
from bertcourse.experiments.results import aggregate, validate_results
from bertcourse.experiments.setup import (
    EVAL_SEED,
    PRESETS,
    ROWS,
    Preset,
    PretrainingCorpus,
    Use,
    language,
    pretraining_corpus,
    variant_config,
)
from bertcourse.registry import MODELS, VARIANTS, build_model

__all__ = ["EvaluationSets", "evaluation_sets", "pretrain", "run", "run_model", "run_variant"]


@dataclass
class EvaluationSets:
    """What every model is measured on: cloze items, each task's train/test items, the influence sentence."""

    cloze: list[ClozeItem]
    tasks: dict[str, tuple[list[TaskItem], list[TaskItem]]]
    pos_tags: tuple[str, ...]
    influence_text: str


def evaluation_sets(preset: Preset) -> EvaluationSets:
    """Held-out items from generators seeded apart from the pre-training corpus (``EVAL_SEED`` + k)."""
    lang = language(preset, EVAL_SEED)
    cloze = [item for cue in CLOZE_CUES for item in lang.cloze_task(preset.cloze_items, cue)]
    tasks = {}
    for k, task in enumerate(preset.tasks, start=1):
        train_items = task_items(task, language(preset, EVAL_SEED + 2 * k), preset.finetune_train)
        test_items = task_items(task, language(preset, EVAL_SEED + 2 * k + 1), preset.finetune_test)
        tasks[task] = (train_items, test_items)
    influence_text = next(item.text for item in cloze if item.cue == "far")
    return EvaluationSets(cloze, tasks, lang.pos_tags, influence_text)


def pretrain(
    name: str,
    preset: Preset,
    corpus: PretrainingCorpus,
    seed: int,
    device: torch.device | str = "cpu",
    cloze_items: Sequence[ClozeItem] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Pre-train variant ``name`` (a key of ``registry.VARIANTS``: ``elmo``, ``gpt``, ``bert``, ...) on
    ``corpus`` with its objective; return the model and what it cost.

    The record holds ``steps`` (the preset's times the variant's ``steps_scale``), ``tokens`` (real tokens
    read), ``flops`` and ``measured``: ``seconds`` (training
    only), ``tokens_per_second``, and the mean training loss of the first and last 10 steps. With
    ``cloze_items`` it also holds ``cloze_curve``: ``{step: {cue: accuracy}}`` before training (step 0)
    and after every tenth of the steps, the learning curve of each cue (its time is not in ``seconds``).
    """
    seed_everything(seed)
    variant = VARIANTS[name]
    model = build_model(variant.family, variant_config(preset, corpus.tokenizer.vocab_size, name))
    steps = preset.pretrain_steps * variant.steps_scale
    curve: dict[str, dict[str, float]] = {}

    def measure(step: int, trained: torch.nn.Module) -> None:
        curve[str(step)] = cloze_accuracy(trained, cloze_items, corpus.tokenizer)  # eval mode, no random draws

    if cloze_items is not None:
        measure(0, model.to(device))
    history = train(
        model, corpus.data(name, preset, seed).batches(preset.batch_size), objective=variant.objective,
        max_steps=steps, lr=preset.lr, seed=seed, progress=False, device=device,
        eval_every=max(1, steps // 10), callback=measure if cloze_items is not None else None,
    )  # fmt: skip
    k = min(10, len(history.train_loss))
    seq_len = round(history.tokens / (steps * preset.batch_size))  # mean real tokens per sequence
    record = {
        "steps": steps,
        "tokens": history.tokens,
        "flops": history.tokens * flops_per_token(model, seq_len),  # training FLOPs (engine.flops), for the curves
        "measured": {
            "seconds": history.seconds,
            "tokens_per_second": history.tokens / history.seconds,
            "loss_start": sum(history.train_loss[:k]) / k,
            "loss_end": sum(history.train_loss[-k:]) / k,
        },
    }
    if cloze_items is not None:
        record["cloze_curve"] = curve
    return model, record


def _finetune_all(
    model: torch.nn.Module, preset: Preset, corpus: PretrainingCorpus, sets: EvaluationSets, seed: int, device: Any,
    bar: tqdm | None, use: Use,
) -> dict[str, Any]:  # fmt: skip
    out = {}
    for task, (train_items, test_items) in sets.tasks.items():
        num_labels = len(sets.pos_tags) if task == "pos" else 2
        out[task] = finetune(
            copy.deepcopy(model), task, train_items, test_items, corpus.tokenizer, num_labels=num_labels,
            steps=preset.finetune_steps, lr=preset.finetune_lr, batch_size=preset.finetune_batch_size, seed=seed,
            max_length=preset.max_len, device=device, use=use,
        )  # fmt: skip
        if bar is not None:
            bar.update()
    return out


def run_variant(
    name: str,
    preset: Preset,
    seed: int,
    corpus: PretrainingCorpus,
    sets: EvaluationSets,
    device: torch.device | str = "cpu",
    bar: tqdm | None = None,
) -> dict[str, dict[str, Any]]:
    """Pre-train variant ``name`` once, then measure every row of ``preset.rows`` that uses it; return
    ``{row: record}``, each record as stored in ``runs/{row}-seed{seed}.json``. What depends on the
    pre-trained network only (cloze, influence, interaction, probe, cost) is measured once and shared."""
    model, pretrain_record = pretrain(name, preset, corpus, seed, device, cloze_items=sets.cloze)
    if bar is not None:
        bar.update()
    curve = pretrain_record.pop("cloze_curve")
    shared: dict[str, Any] = {
        "seed": seed,
        "variant": name,
        "preset": dataclasses.asdict(preset),
        "parameters": model.num_parameters(),
        "config": dataclasses.asdict(model.config),
        "pretrain": pretrain_record,
        "cloze": curve[str(pretrain_record["steps"])],  # the curve's last point: the trained model
        "cloze_curve": curve,
    }
    ids = torch.tensor([corpus.tokenizer.encode(sets.influence_text)], device=device)
    tokens = corpus.tokenizer.convert_ids_to_tokens(ids[0])
    shared["influence"] = {}
    for part in ("all", "forward", "backward") if VARIANTS[name].family == "elmo" else ("all",):
        matrix = model_influence(model, ids, part).cpu()
        shared["influence"][part] = {"tokens": tokens, "matrix": matrix.tolist(), **side_shares(matrix)}
    if VARIANTS[name].family == "gpt":  # GPT's fairest cloze: the probability of the whole sentence
        shared["cloze_sentence"] = cloze_accuracy(model, sets.cloze, corpus.tokenizer, sentence=True)
    both = [item for item in sets.cloze if item.cue == "both"]
    shared["interaction"] = cloze_interaction(model, both, corpus.tokenizer)  # deep bidirectionality, measured
    shared["probe"] = cloze_probe(model, both, corpus.tokenizer)
    shared["forward_ms"] = {str(T): ms for T, ms in forward_time(model, preset.cost_lengths, device=device).items()}
    records = {}
    for row_name in _rows_of(preset, name):
        row = ROWS[row_name]
        record = {"model": row_name, **shared, "use": row.use}
        record["finetune"] = _finetune_all(copy.deepcopy(model), preset, corpus, sets, seed, device, bar, row.use)
        if row.main:
            seed_everything(seed)
            random_model = build_model(VARIANTS[name].family, model.config)  # same config, fresh random weights
            record["finetune_random"] = _finetune_all(random_model, preset, corpus, sets, seed, device, bar, row.use)
        records[row_name] = record
    return records


def run_model(
    name: str,
    preset: Preset,
    seed: int,
    corpus: PretrainingCorpus,
    sets: EvaluationSets,
    device: torch.device | str = "cpu",
    bar: tqdm | None = None,
) -> dict[str, Any]:
    """Every measurement of row ``name`` (a key of ``experiments.setup.ROWS``) and ``seed``: the record
    stored in ``runs/{name}-seed{seed}.json``, pre-training its variant for this row alone."""
    if name not in ROWS:
        raise ValueError(f"name must be one of {tuple(ROWS)}, got {name!r}")
    preset = dataclasses.replace(preset, rows=(name,))
    return run_variant(ROWS[name].variant, preset, seed, corpus, sets, device, bar)[name]


def _rows_of(preset: Preset, variant: str) -> list[str]:
    """The rows of ``preset`` whose pre-training is ``variant``'s, in the preset's order."""
    return [r for r in preset.rows if ROWS[r].variant == variant]


def _chance(sets: EvaluationSets) -> dict[str, Any]:
    """Majority-class share of the cloze items per cue and of each task's test labels."""
    cloze = {}
    for cue in CLOZE_CUES:
        answers = Counter(item.candidates.index(item.answer) for item in sets.cloze if item.cue == cue)
        cloze[cue] = max(answers.values()) / sum(answers.values())

    def majority(items: Sequence[TaskItem], task: str) -> float:
        labels = Counter(it.label[it.target] if task == "pos" else it.label for it in items)
        return max(labels.values()) / sum(labels.values())

    finetune_chance, by_cue = {}, {}
    for task, (_, test_items) in sets.tasks.items():
        finetune_chance[task] = majority(test_items, task)
        cues = sorted({it.cue for it in test_items})
        by_cue[task] = {cue: majority([it for it in test_items if it.cue == cue], task) for cue in cues}
    return {"cloze": cloze, "finetune": finetune_chance, "finetune_by_cue": by_cue}


def _shared_sets(preset: Preset) -> tuple[PretrainingCorpus, EvaluationSets]:
    """The corpus and evaluation sets of ``preset``, built once per process (the rows run do not change them)."""
    return _sets(dataclasses.replace(preset, rows=MODELS))


@functools.cache
def _sets(preset: Preset) -> tuple[PretrainingCorpus, EvaluationSets]:
    return pretraining_corpus(preset), evaluation_sets(preset)


def _run_unit(name: str, preset: Preset, seed: int, device: str, threads: int) -> dict[str, dict[str, Any]]:
    """One (variant, seed) of the experiment in a worker process with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    corpus, sets = _shared_sets(preset)
    return run_variant(name, preset, seed, corpus, sets, device)


def _jobs(jobs: int | str, device: torch.device, units: int) -> int:
    """How many workers ``jobs`` asks for with ``units`` runs to do: never more than the runs, at least 1."""
    if jobs == "auto":
        jobs = (os.cpu_count() or 1) if device.type == "cpu" else 1
    elif not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive int or 'auto', got {jobs!r}")
    return max(1, min(jobs, units))


def run(
    preset: Preset | str,
    seeds: int | Sequence[int],
    out: str | Path,
    *,
    models: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    jobs: int | str = 1,
    progress: bool = True,
    plots: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment into ``out``; write and return ``results.json``'s content.

    ``seeds``: a count N (seeds 0..N-1) or the seeds themselves. ``models``: the rows to run (keys of
    ``experiments.setup.ROWS``; default the preset's ``rows``). Runs already in ``out/runs`` with the
    same preset are loaded instead of recomputed; a run made with another preset raises ``ValueError``.
    ``jobs``: how many (variant, seed) pre-trainings go at once, each with the rows that use it, in its
    own process with an equal share of torch's threads (``"auto"``: one per CPU core on a CPU, 1 on a
    GPU; the command line's default). The models are small, so on a CPU several one-thread runs side by
    side finish sooner than one run using every core; each run is seeded on its own, so the runs are the
    same whichever order they finish in. The workers are started with "spawn", which re-imports the main
    module: a script that calls ``run`` with ``jobs`` > 1 must do so under ``if __name__ == "__main__":``
    (a notebook needs nothing).
    """
    preset = PRESETS[preset] if isinstance(preset, str) and preset in PRESETS else preset
    if not isinstance(preset, Preset):
        raise ValueError(f"preset must be one of {tuple(PRESETS)} or a Preset, got {preset!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or any(not isinstance(s, int) or s < 0 for s in seed_list):
        raise ValueError(f"seeds must be a count >= 1 or non-negative ints, got {seeds!r}")
    models = list(preset.rows if models is None else models)
    unknown = [m for m in models if m not in ROWS]
    if unknown or not models:
        raise ValueError(f"models must be a non-empty subset of {tuple(ROWS)}, got {models}")
    preset = dataclasses.replace(preset, rows=tuple(models))
    _jobs(jobs, torch.device("cpu"), 1)  # a bad value fails before any work
    device = resolve_device(device) if device is not None else get_device()  # before any folder is made
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    def same(stored: dict[str, Any]) -> bool:  # the rows run are not part of what makes a run comparable
        mine = json.loads(json.dumps(dataclasses.asdict(preset)))  # tuples as JSON lists
        return {k: v for k, v in stored.items() if k != "rows"} == {k: v for k, v in mine.items() if k != "rows"}

    records: dict[tuple[str, int], dict[str, Any]] = {}
    for m, s in [(m, s) for s in seed_list for m in models]:
        path = out / "runs" / f"{m}-seed{s}.json"
        if path.exists():
            record = json.loads(path.read_text())
            if not same(record["preset"]):
                raise ValueError(
                    f"{path} was made with another preset ({record['preset']['name']!r}); use another --out"
                )
            records[(m, s)] = record
    variants = list(dict.fromkeys(ROWS[m].variant for m in models))
    todo = [(v, s) for s in seed_list for v in variants if any((m, s) not in records for m in _rows_of(preset, v))]
    todo.sort(key=lambda unit: (-VARIANTS[unit[0]].steps_scale, VARIANTS[unit[0]].family != "elmo"))  # slowest first
    workers = _jobs(jobs, device, len(todo))
    corpus, sets = _shared_sets(preset)
    steps = {v: 1 + len(sets.tasks) * sum(1 + ROWS[m].main for m in _rows_of(preset, v)) for v in variants}
    with tqdm(
        total=sum(steps[v] for v, _ in todo), desc=f"compare {preset.name}", disable=not progress, dynamic_ncols=True
    ) as bar:

        def keep(s: int, unit: dict[str, dict[str, Any]]) -> None:
            for m, record in unit.items():
                (out / "runs" / f"{m}-seed{s}.json").write_text(json.dumps(record, indent=1) + "\n")
                records[(m, s)] = record

        if workers == 1:
            for v, s in todo:
                bar.set_postfix(variant=v, seed=s)
                keep(s, run_variant(v, preset, s, corpus, sets, device, bar))
        else:
            threads = max(1, torch.get_num_threads() // workers)
            bar.set_postfix(jobs=workers)
            spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with torch's threads
            with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
                futures = {pool.submit(_run_unit, v, preset, s, str(device), threads): (v, s) for v, s in todo}
                for future in as_completed(futures):
                    v, s = futures[future]
                    keep(s, future.result())
                    bar.update(steps[v])

    header = {
        "preset": preset.name,
        "config": dataclasses.asdict(preset),
        "seeds": seed_list,
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "command": command
        or f"python -m bertcourse.compare --preset {preset.name} --seeds {len(seed_list)} --out {out}",
        "chance": _chance(sets),
        "items": {
            "cloze": dict(Counter(item.cue for item in sets.cloze)),
            "finetune": {t: {"train": len(a), "test": len(b)} for t, (a, b) in sets.tasks.items()},
        },
    }
    runs = {m: [records[(m, s)] for s in seed_list] for m in models}
    results = aggregate(runs, header)
    validate_results(results)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    from bertcourse.experiments import report  # matplotlib: imported only when writing the report

    (out / "results.md").write_text(report.markdown(results))
    if plots:
        report.save_plots(results, out)
    return results
