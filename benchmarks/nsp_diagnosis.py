"""Is next-sentence prediction learned on the toy language at the course budget? Chapter 08's NSP diagnosis.

Each recipe pre-trains a BERT of the head-to-head (``registry.VARIANTS``, or a variant of one) on the
``course`` preset's corpus for one seed, with the engine of the experiment, and scores its own NSP head
every tenth of its steps on two sets of 1,024 sentence pairs: pairs of its training corpus (drawn as in
pre-training) and pairs of held-out documents (a generator seeded apart, ``EVAL_SEED``). Half the pairs of
each set are true continuations, so 0.5 is chance. One JSON per recipe lands in ``--out`` (a rerun skips
the recipes it finds), then ``diagnosis.json`` gathers them:

    python benchmarks/nsp_diagnosis.py --out notebooks/results/nsp-diagnosis [--seed 0] [--jobs 2]

On 2 CPU cores (two recipes at once, one thread each) the five recipes take about 20 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertcourse.data import pretraining
from bertcourse.data.pretraining import PretrainData, tokenize_documents
from bertcourse.device import seed_everything
from bertcourse.engine import train
from bertcourse.experiments.setup import EVAL_SEED, PRESETS, language, pretraining_corpus, variant_config
from bertcourse.objectives import next_sentence_pairs
from bertcourse.registry import CONTROLLED_BERT, VARIANTS, Variant, build_model
from bertcourse.validation import positive_int

PAIRS = 1024  # sentence pairs per scored set
RECIPES: dict[str, Variant] = {
    "bert (MLM + NSP)": VARIANTS["bert"],
    "NSP alone": Variant("bert", "nsp", "", CONTROLLED_BERT),
    "NSP alone, 5x steps": Variant("bert", "nsp", "", CONTROLLED_BERT, steps_scale=5),
    "paper block (post-LN, pooler), MLM + NSP": VARIANTS["bert-post-ln"],
    "control: NSP alone, every random B reversed": Variant("bert", "nsp", "", CONTROLLED_BERT),
}
"""The head-to-head's BERT, NSP without the masked LM (short and long), the paper's block with its pooler, and
a control: NSP when every random second sentence carries a mark of its own (its tokens in reverse order), which
the model can read from B alone, so that a failure elsewhere is not a failure of the pipeline."""
MARKED = {"control: NSP alone, every random B reversed"}


def _marked_pairs(documents: Any, *, rng: Any = None, seed: int = 0) -> list[tuple[Any, Any, int]]:
    """``objectives.next_sentence_pairs`` with every random B (label 1) reversed: a first-order mark."""
    return [(a, b[::-1] if label else b, label) for a, b, label in next_sentence_pairs(documents, rng=rng, seed=seed)]


def _file(out: Path, name: str) -> Path:
    return out / ("".join(c if c.isalnum() else "-" for c in name).strip("-") + ".json")


@torch.no_grad()
def nsp_accuracy(model: nn.Module, data: PretrainData) -> float:
    """Share of ``PAIRS`` pairs of ``data`` (epoch 0's draw) whose label the model's NSP head predicts."""
    was_training = model.training
    model.eval()
    right = total = 0
    for batch in data.eval_batches(128, 0, 1, PAIRS):
        labels = batch.pop("next_sentence_label")  # (B,) 0 = B follows A, 1 = random
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "label_weights")}
        right += int((model(**inputs).seq_relationship_logits.argmax(-1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    return right / total


def run_recipe(name: str, seed: int, out: Path) -> dict[str, Any]:
    """Pre-train recipe ``name`` on the course preset with one thread; write and return its NSP curve."""
    torch.set_num_threads(1)
    if name in MARKED:  # in this (spawned) process only: every pair set below is drawn with the mark
        pretraining.next_sentence_pairs = _marked_pairs
    preset, recipe = PRESETS["course"], RECIPES[name]
    corpus = pretraining_corpus(preset)
    held_out = [d.texts for d in language(preset, EVAL_SEED).corpus(preset.n_docs // 2)]
    unmasked = {"mlm_probability": 1e-9}  # the pairs as the model reads them, (next to) nothing masked
    sets = {
        "train": PretrainData("bert", corpus.ids, corpus.tokenizer, preset.max_len, seed, **unmasked),
        "held-out": PretrainData(
            "bert", tokenize_documents(held_out, corpus.tokenizer), corpus.tokenizer, preset.max_len, seed, **unmasked
        ),
    }
    key = f"nsp diagnosis: {name}"
    VARIANTS[key] = recipe  # in this process only: the config and the corpus read the registry
    seed_everything(seed)  # as experiments.head_to_head.pretrain does
    model = build_model("bert", variant_config(preset, corpus.tokenizer.vocab_size, key))
    steps = preset.pretrain_steps * recipe.steps_scale
    curve: dict[str, dict[str, float]] = {}

    def measure(step: int, trained: nn.Module) -> None:
        curve[str(step)] = {k: nsp_accuracy(trained, data) for k, data in sets.items()}

    majority = {}  # what always guessing the commoner label scores: chance on each set
    for k, data in sets.items():
        labels = [int(b["next_sentence_label"].sum()) for b in data.eval_batches(128, 0, 1, PAIRS)]
        random_share = sum(labels) / min(len(data), PAIRS)
        majority[k] = max(random_share, 1 - random_share)
    measure(0, model)
    history = train(
        model, corpus.data(key, preset, seed).batches(preset.batch_size),
        objective=recipe.objective, max_steps=steps, lr=preset.lr, seed=seed, progress=False,
        eval_every=max(1, steps // 10), callback=measure,
    )  # fmt: skip
    result = {
        "recipe": name,
        "variant": {f.name: getattr(recipe, f.name) for f in dataclasses.fields(Variant) if f.name != "config"},
        "seed": seed,
        "steps": steps,
        "seconds": history.seconds,
        "loss_end": sum(history.train_loss[-10:]) / 10,  # the objective's: NSP alone ln 2 = 0.693 at chance
        "majority": majority,
        "nsp_curve": curve,
    }
    _file(out, name).write_text(json.dumps(result, indent=1, default=dict) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=positive_int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [name for name in RECIPES if not _file(args.out, name).exists()]
    todo.sort(key=lambda name: -RECIPES[name].steps_scale)  # the longest first
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        for result in pool.map(run_recipe, todo, [args.seed] * len(todo), [args.out] * len(todo)):
            print(result["recipe"], result["nsp_curve"][str(result["steps"])])
    gathered = {name: json.loads(_file(args.out, name).read_text()) for name in RECIPES}
    (args.out / "diagnosis.json").write_text(json.dumps(gathered, indent=1) + "\n")


if __name__ == "__main__":
    main()
