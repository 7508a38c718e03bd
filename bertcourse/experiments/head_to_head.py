"""ELMo vs GPT vs BERT at equal budget: the head-to-head experiment of chapter 08 (``run``), resumable.

Its command line is ``python -m bertcourse.compare --preset {tiny,course,full} --seeds N --out DIR``.

For every seed, each model is pre-trained with its own objective (ELMo: forward + backward LM; GPT:
left-to-right LM; BERT: masked LM + next-sentence prediction) on the same sequences, with the same
tokenizer, steps, batch and schedule, at parameter counts within a few percent
(``experiments.setup``), each built by ``bertcourse.registry`` and trained by the one engine,
``bertcourse.engine.train``. Then it is measured:

1. **cloze by cue side** (``experiments.cloze``): fill a blank decided by a cue on the ``left``, the
   ``right``, ``far`` to the left, or on ``both`` sides jointly, with each model's own LM head;
2. **fine-tuning** (``experiments.finetune``) on the preset's toy tasks under one head, overall and by cue;
3. **pre-training gain**: the same fine-tuning from random initialisation;
4. **measured context visibility** (``experiments.influence``): the influence matrix of the trained encoder;
5. **cost** (``experiments.cost``): parameters, pre-training time and tokens/s, forward time vs length.

``--jobs`` runs that many (model, seed) pairs at once, each in its own process with an equal share of the
threads (default: one per CPU core on a CPU, 1 on a GPU). Each pair is seeded on its own, so at the same
number of threads its record does not depend on the worker that ran it (tested: two workers give the
records of one process). DIR receives ``runs/{model}-seed{seed}.json`` (one per finished model and seed: a
rerun skips them, so an interrupted run resumes), then ``results.json``, ``results.md`` (the tables) and
PNG plots.

``results.json`` schema (every ``stat`` is ``{"mean": float, "std": float, "n": int, "ci95": [lo, hi]}`` over
seeds, std the sample standard deviation (0 for one seed), ci95 the t-interval of the mean (null for one
seed); accuracies in [0, 1]; cue in ``left``, ``right``, ``far``, ``both``)::

    {
      "preset": str, "config": {Preset fields}, "seeds": [int], "device": str, "command": str,
      "models": {
        "elmo" | "gpt" | "bert": {
          "parameters": int,                       # of the pre-training model, tied weights once
          "config": {model config fields}, "seeds": [int],
          "cloze": {cue: stat},                    # accuracy
          "cloze_curve": {step: {cue: stat}},      # the same during pre-training: step "0", then every tenth
          "cloze_sentence": {cue: stat},           # GPT only: scored by the whole sentence's probability
          "finetune": {task: stat + {"by_cue": {cue: stat}}},         # from the pre-trained weights
          "finetune_random": {task: stat + {"by_cue": {cue: stat}}},  # same steps, random initialisation
          "pretraining_gain": {task: stat},        # finetune - finetune_random, per seed
          "pretrain": {"steps": int, "tokens": int, "seconds": stat, "tokens_per_second": stat,
                       "loss_start": stat, "loss_end": stat},
          "forward_ms": {T: stat},                 # encode() of a (8, T) batch, median of 3
          "influence": {part: {"tokens": [str], "matrix": [[float]] (T x T, mean over seeds),
                               "left": stat, "right": stat}},  # part "all"; ELMo also "forward", "backward"
          "interaction": stat,   # relative joint-context interaction at the `both` blank (experiments.interaction)
          "probe": stat,         # held-out accuracy of a frozen linear and/but probe on that blank
        }
      },
      "chance": {"cloze": {cue: float}, "finetune": {task: float},    # majority-class share of the test items
                 "finetune_by_cue": {task: {cue: float}}},
      "items": {"cloze": {cue: int}, "finetune": {task: {"train": int, "test": int}}}
    }

Tasks: ``sentiment``, ``acceptability``, ``pos`` (the tag of each item's ambiguous word), ``nsp``.
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
from bertcourse.device import get_device, seed_everything
from bertcourse.engine import train
from bertcourse.experiments.cloze import cloze_accuracy
from bertcourse.experiments.cost import forward_time
from bertcourse.experiments.finetune import finetune, task_items
from bertcourse.experiments.influence import model_influence, side_shares
from bertcourse.experiments.interaction import cloze_interaction, cloze_probe
from bertcourse.experiments.results import aggregate, validate_results
from bertcourse.experiments.setup import (
    EVAL_SEED,
    PRESETS,
    Preset,
    PretrainingCorpus,
    language,
    preset_configs,
    pretraining_corpus,
)
from bertcourse.registry import MODELS, ModelName, build_model

__all__ = ["EvaluationSets", "evaluation_sets", "pretrain", "run", "run_model"]


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
    name: ModelName,
    preset: Preset,
    corpus: PretrainingCorpus,
    seed: int,
    device: torch.device | str = "cpu",
    cloze_items: Sequence[ClozeItem] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Pre-train model ``name`` on ``corpus`` with its own objective; return it and what it cost.

    The record holds ``steps``, ``tokens`` (real tokens read) and ``measured``: ``seconds`` (training
    only), ``tokens_per_second``, and the mean training loss of the first and last 10 steps. With
    ``cloze_items`` it also holds ``cloze_curve``: ``{step: {cue: accuracy}}`` before training (step 0)
    and after every tenth of the steps, the learning curve of each cue (its time is not in ``seconds``).
    """
    seed_everything(seed)
    model = build_model(name, preset_configs(preset, corpus.tokenizer.vocab_size)[name])
    curve: dict[str, dict[str, float]] = {}

    def measure(step: int, trained: torch.nn.Module) -> None:
        curve[str(step)] = cloze_accuracy(trained, cloze_items, corpus.tokenizer)  # eval mode, no random draws

    if cloze_items is not None:
        measure(0, model.to(device))
    history = train(
        model, corpus.data(name, preset, seed).batches(preset.batch_size), objective=name,
        max_steps=preset.pretrain_steps, lr=preset.lr, seed=seed, progress=False, device=device,
        eval_every=max(1, preset.pretrain_steps // 10), callback=measure if cloze_items is not None else None,
    )  # fmt: skip
    k = min(10, len(history.train_loss))
    record = {
        "steps": preset.pretrain_steps,
        "tokens": history.tokens,
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
    bar: tqdm | None,
) -> dict[str, Any]:  # fmt: skip
    out = {}
    for task, (train_items, test_items) in sets.tasks.items():
        num_labels = len(sets.pos_tags) if task == "pos" else 2
        out[task] = finetune(
            copy.deepcopy(model), task, train_items, test_items, corpus.tokenizer, num_labels=num_labels,
            steps=preset.finetune_steps, lr=preset.finetune_lr, batch_size=preset.finetune_batch_size, seed=seed,
            max_length=preset.max_len, device=device,
        )  # fmt: skip
        if bar is not None:
            bar.update()
    return out


def run_model(
    name: ModelName,
    preset: Preset,
    seed: int,
    corpus: PretrainingCorpus,
    sets: EvaluationSets,
    device: torch.device | str = "cpu",
    bar: tqdm | None = None,
) -> dict[str, Any]:
    """Every measurement of one model and seed, as the record stored in ``runs/{name}-seed{seed}.json``."""
    model, pretrain_record = pretrain(name, preset, corpus, seed, device, cloze_items=sets.cloze)
    if bar is not None:
        bar.update()
    curve = pretrain_record.pop("cloze_curve")
    cloze = curve[str(preset.pretrain_steps)]  # the curve's last point: the trained model
    ids = torch.tensor([corpus.tokenizer.encode(sets.influence_text)], device=device)
    tokens = corpus.tokenizer.convert_ids_to_tokens(ids[0])
    influence = {}
    for part in ("all", "forward", "backward") if name == "elmo" else ("all",):
        matrix = model_influence(model, ids, part).cpu()
        influence[part] = {"tokens": tokens, "matrix": matrix.tolist(), **side_shares(matrix)}
    if name == "gpt":  # GPT's fairest cloze: the probability of the whole sentence (experiments.cloze)
        pretrain_record["cloze_sentence"] = cloze_accuracy(model, sets.cloze, corpus.tokenizer, sentence=True)
    both = [item for item in sets.cloze if item.cue == "both"]
    joint = {  # deep bidirectionality, measured on the blank of the `both` cue
        "interaction": cloze_interaction(model, both, corpus.tokenizer),
        "probe": cloze_probe(model, both, corpus.tokenizer),
    }
    forward_ms = forward_time(model, preset.cost_lengths, device=device)
    finetuned = _finetune_all(model, preset, corpus, sets, seed, device, bar)
    seed_everything(seed)
    random_model = build_model(name, model.config)  # same config, fresh random weights
    from_random = _finetune_all(random_model, preset, corpus, sets, seed, device, bar)
    return {
        "model": name,
        "seed": seed,
        "preset": dataclasses.asdict(preset),
        "parameters": model.num_parameters(),
        "config": dataclasses.asdict(model.config),
        "pretrain": pretrain_record,
        "cloze": cloze,
        "cloze_curve": curve,
        **({"cloze_sentence": pretrain_record.pop("cloze_sentence")} if "cloze_sentence" in pretrain_record else {}),
        "finetune": finetuned,
        "finetune_random": from_random,
        "influence": influence,
        **joint,
        "forward_ms": {str(T): ms for T, ms in forward_ms.items()},
    }


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


@functools.cache
def _shared_sets(preset: Preset) -> tuple[PretrainingCorpus, EvaluationSets]:
    """The corpus and evaluation sets of ``preset``, built once per process (they are deterministic)."""
    return pretraining_corpus(preset), evaluation_sets(preset)


def _run_unit(name: ModelName, preset: Preset, seed: int, device: str, threads: int) -> dict[str, Any]:
    """One (model, seed) of the experiment in a worker process with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    corpus, sets = _shared_sets(preset)
    return run_model(name, preset, seed, corpus, sets, device)


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
    models: Sequence[ModelName] = MODELS,
    device: torch.device | str | None = None,
    jobs: int | str = 1,
    progress: bool = True,
    plots: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment into ``out``; write and return ``results.json``'s content.

    ``seeds``: a count N (seeds 0..N-1) or the seeds themselves. Runs already in ``out/runs`` with the
    same preset are loaded instead of recomputed; a run made with another preset raises ``ValueError``.
    ``jobs``: how many (model, seed) runs go at once, each in its own process with an equal share of
    torch's threads (``"auto"``: one per CPU core on a CPU, 1 on a GPU; the command line's default). The
    models are small, so on a CPU several one-thread runs side by side finish sooner than one run using
    every core; each run is seeded on its own, so the runs are the same whichever order they finish in.
    The workers are started with "spawn", which re-imports the main module: a script that calls ``run``
    with ``jobs`` > 1 must do so under ``if __name__ == "__main__":`` (a notebook needs nothing).
    """
    preset = PRESETS[preset] if isinstance(preset, str) and preset in PRESETS else preset
    if not isinstance(preset, Preset):
        raise ValueError(f"preset must be one of {tuple(PRESETS)} or a Preset, got {preset!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or any(not isinstance(s, int) or s < 0 for s in seed_list):
        raise ValueError(f"seeds must be a count >= 1 or non-negative ints, got {seeds!r}")
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be a non-empty subset of {MODELS}, got {list(models)}")
    _jobs(jobs, torch.device("cpu"), 1)  # a bad value fails before any work
    device = torch.device(device) if device is not None else get_device()
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    wanted = [(m, s) for s in seed_list for m in models]
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for m, s in wanted:
        path = out / "runs" / f"{m}-seed{s}.json"
        if path.exists():
            record = json.loads(path.read_text())
            if record["preset"] != json.loads(json.dumps(dataclasses.asdict(preset))):  # tuples as JSON lists
                raise ValueError(
                    f"{path} was made with another preset ({record['preset']['name']!r}); use another --out"
                )
            records[(m, s)] = record
    todo = [(m, s) for m, s in wanted if (m, s) not in records]
    todo.sort(key=lambda unit: unit[0] != "elmo")  # the slowest runs first, so parallel workers end together
    workers = _jobs(jobs, device, len(todo))
    corpus, sets = _shared_sets(preset)
    per_unit = 1 + 2 * len(sets.tasks)
    with tqdm(
        total=per_unit * len(todo), desc=f"compare {preset.name}", disable=not progress, dynamic_ncols=True
    ) as bar:

        def keep(m: str, s: int, record: dict[str, Any]) -> None:
            (out / "runs" / f"{m}-seed{s}.json").write_text(json.dumps(record, indent=1) + "\n")
            records[(m, s)] = record

        if workers == 1:
            for m, s in todo:
                bar.set_postfix(model=m, seed=s)
                keep(m, s, run_model(m, preset, s, corpus, sets, device, bar))
        else:
            threads = max(1, torch.get_num_threads() // workers)
            bar.set_postfix(jobs=workers)
            spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with torch's threads
            with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
                futures = {pool.submit(_run_unit, m, preset, s, str(device), threads): (m, s) for m, s in todo}
                for future in as_completed(futures):
                    keep(*futures[future], future.result())
                    bar.update(per_unit)

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
