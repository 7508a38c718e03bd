"""Which parts of a BERT recipe let masked-LM pre-training learn the `both` cue? Chapter 08's diagnosis.

Each recipe is a ``registry.Variant`` of the head-to-head's controlled BERT, pre-trained on the ``course``
preset for one seed by the same function as the experiment (``experiments.head_to_head.pretrain``), with
the cloze accuracy of every cue measured at every tenth of its steps. One JSON per recipe lands in
``--out`` (a rerun skips the recipes it finds), then ``diagnosis.json`` gathers them:

    python benchmarks/both_cue_diagnosis.py --out notebooks/results/both-cue-diagnosis [--seed 0] [--jobs 2]

On 2 CPU cores (two recipes at once, one thread each) the seven recipes take about 15 minutes (one 12,500-step
recipe alone: 7 min 22 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from bertcourse.experiments.head_to_head import evaluation_sets, pretrain
from bertcourse.experiments.setup import PRESETS, pretraining_corpus
from bertcourse.registry import CONTROLLED_BERT, VARIANTS, Variant
from bertcourse.validation import positive_int

UNTIED = {**CONTROLLED_BERT, "tie_decoder": False}
CONJUNCTIONS = {"and": 10, "but": 10}
RECIPES: dict[str, Variant] = {
    "untied": Variant("bert", "bert", "", UNTIED),
    "untied, x10": Variant("bert", "bert", "", UNTIED, target_words=CONJUNCTIONS),
    "untied, no masked neighbours": Variant("bert", "bert", "", UNTIED, mask_adjacent=False),
    "untied, no masked neighbours, x10": Variant(
        "bert", "bert", "", UNTIED, mask_adjacent=False, target_words=CONJUNCTIONS
    ),
    # bert-joint is "untied, no masked neighbours, x10, 5x steps"; each of these drops one of its parts
    "tied, no masked neighbours, x10, 5x steps": Variant(
        "bert", "bert", "", CONTROLLED_BERT, mask_adjacent=False, target_words=CONJUNCTIONS, steps_scale=5
    ),
    "untied, x10, 5x steps": Variant("bert", "bert", "", UNTIED, target_words=CONJUNCTIONS, steps_scale=5),
    "untied, no masked neighbours, 5x steps": Variant("bert", "bert", "", UNTIED, mask_adjacent=False, steps_scale=5),
}
"""Recipes between the controlled BERT (``bert``) and ``bert-joint`` (untied decoder, no masked neighbours,
and/but targets x10, 5x steps); those two are in the committed course run (seeds 0-4), so they are not here."""


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _file(out: Path, name: str) -> Path:
    return out / (name.replace(", ", "_").replace(" ", "-") + ".json")


def run_recipe(name: str, seed: int, out: Path) -> dict[str, Any]:
    """Pre-train recipe ``name`` on the course preset with one thread; write and return its curve."""
    torch.set_num_threads(1)
    preset = PRESETS["course"]
    VARIANTS[f"diagnosis: {name}"] = RECIPES[name]  # in this process only: pretrain() reads the registry
    corpus, sets = pretraining_corpus(preset), evaluation_sets(preset)
    _, record = pretrain(f"diagnosis: {name}", preset, corpus, seed, cloze_items=sets.cloze)
    result = {
        "recipe": name,
        "variant": {f.name: _plain(getattr(RECIPES[name], f.name)) for f in dataclasses.fields(Variant)},
        "seed": seed,
        "steps": record["steps"],
        "seconds": record["measured"]["seconds"],
        "cloze_curve": record["cloze_curve"],
    }
    _file(out, name).write_text(json.dumps(result, indent=1) + "\n")
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
            print(result["recipe"], {c: round(a, 2) for c, a in result["cloze_curve"][str(result["steps"])].items()})
    gathered = {name: json.loads(_file(args.out, name).read_text()) for name in RECIPES}
    (args.out / "diagnosis.json").write_text(json.dumps(gathered, indent=1) + "\n")


if __name__ == "__main__":
    main()
