"""Is the live ``tiny`` run's BERT worse than chance on the left cue, or are its 100 items noisy?

Chapter 08 runs the ``tiny`` preset live: one seed, 100 cloze items per cue. Its BERT scores 0.40 on the
left cue, 2 standard errors below chance on 100 items. This script pre-trains the same two models (seed 0,
bit for bit the live run's) and scores every cue on the live run's 100 items and on 1,000 items from each
of three generators seeded apart from them. A model worse than chance would stay below 0.5 on the fresh
items; item noise would not. Writes one JSON:

    python benchmarks/tiny_cloze_items.py --out notebooks/results/tiny-cloze-items [--seed 0]

About a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bertcourse.data.toylang import CLOZE_CUES
from bertcourse.experiments.cloze import cloze_accuracy
from bertcourse.experiments.head_to_head import evaluation_sets, pretrain
from bertcourse.experiments.setup import EVAL_SEED, PRESETS, language, pretraining_corpus

FRESH_SEEDS = (EVAL_SEED + 777, EVAL_SEED + 778, EVAL_SEED + 779)  # apart from every set the run uses
FRESH_ITEMS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = PRESETS["tiny"]
    corpus, live_items = pretraining_corpus(preset), evaluation_sets(preset).cloze
    fresh = {
        seed: [it for cue in CLOZE_CUES for it in language(preset, seed).cloze_task(FRESH_ITEMS, cue)]
        for seed in FRESH_SEEDS
    }
    result: dict[str, object] = {"seed": args.seed, "preset": preset.name, "fresh_items": FRESH_ITEMS, "models": {}}
    for name in ("gpt", "bert"):
        model, _ = pretrain(name, preset, corpus, args.seed)
        model.eval()
        scores = {"live items": cloze_accuracy(model, live_items, corpus.tokenizer)}
        for seed, items in fresh.items():
            scores[f"fresh items, generator {seed}"] = cloze_accuracy(model, items, corpus.tokenizer)
        result["models"][name] = scores  # type: ignore[index]
        print(name, json.dumps(scores), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "items.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
