"""Chapter 09: what real pre-training buys, measured fairly on one architecture.

The comparison is MiniLM's own architecture (6 layers of width 384) with its pre-trained weights against
the same architecture randomly initialised, on the toy language's sentiment task:

1. each start gets its best learning rate from a small sweep, chosen on a development set (never the test set);
2. every run passes several times over its labelled examples at a constant learning rate after warm-up
   (:func:`bertcourse.chapters.label_budget.fine_tune`), so it runs until its curve is flat;
3. several seeds per (start, number of labels), reported with 95 % intervals.

A toy sentence uses a few hundred of MiniLM's 30,522 WordPiece ids. :func:`compact_vocabulary` keeps only
those rows of the token-embedding table (and renumbers the ids): a row that no input uses never changes an
output, so the model computes exactly what the full one computes (a test proves it), while the optimiser
no longer updates 11.7M unused numbers at every step. Both starts use the compact table.

``python -m bertcourse.chapters.minilm_gain --out notebooks/results/09_minilm_gain.json`` runs the whole
measurement (minutes on a CPU) and writes the results chapter 09 reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from bertcourse.bert import BertModel
from bertcourse.chapters.label_budget import fine_tune, steps_for_epochs
from bertcourse.data import ClassificationDataset, PadCollator, ToyLanguage
from bertcourse.heads import SequenceClassifier
from bertcourse.pretrained import load_minilm
from bertcourse.tokenizers import WordPieceTokenizer

__all__ = ["LRS", "SIZES", "compact_vocabulary", "encode_items", "measure", "run_one"]

SIZES = (16, 64, 256)  # labelled sentences
LRS = {"pre-trained": (3e-5, 1e-4, 3e-4), "random": (1e-4, 3e-4, 1e-3)}  # the sweep, per start
BATCH, EPOCHS, MIN_STEPS = 16, 8, 60


def compact_vocabulary(model: BertModel, used_ids: Sequence[int]) -> tuple[BertModel, Tensor]:
    """A copy of ``model`` whose token table keeps only ``used_ids`` (``[PAD]`` first), and the id map.

    Returns ``(compact, remap)``: ``remap[old_id]`` is the new id (-1 for an id not kept), so
    ``compact(remap[input_ids])`` equals ``model(input_ids)`` for any input made of kept ids.
    """
    pad = model.config.pad_token_id
    kept = sorted(set(used_ids) - {pad})
    if any(not 0 <= i < model.config.vocab_size for i in kept):
        raise ValueError(f"used_ids must lie in [0, vocab_size={model.config.vocab_size})")
    kept = [pad, *kept]  # [PAD] becomes id 0, the compact config's pad_token_id
    config = dataclasses.replace(model.config, vocab_size=len(kept), pad_token_id=0)
    compact = BertModel(config, add_pooling_layer=model.pooler is not None)
    state = model.state_dict()
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][kept].clone()
    compact.load_state_dict(state)
    remap = torch.full((model.config.vocab_size,), -1, dtype=torch.long)
    remap[torch.tensor(kept)] = torch.arange(len(kept))
    return compact, remap


def encode_items(items: Sequence, tokenizer: WordPieceTokenizer, remap: Tensor) -> dict[str, Tensor]:
    """Labelled sentences -> one padded batch (``input_ids`` in the compact numbering, mask, labels)."""
    batch = PadCollator(tokenizer)(list(ClassificationDataset.from_items(items, tokenizer)))
    batch["input_ids"] = remap[batch["input_ids"]]
    if bool((batch["input_ids"] < 0).any()):
        raise ValueError("items use a token id that the compact vocabulary does not keep")
    return batch


def run_one(
    encoder: BertModel,
    train: dict[str, Tensor],
    test: dict[str, Tensor],
    lr: float,
    seed: int,
    steps: int,
    eval_every: int | None = None,
) -> dict:
    """Fine-tune ``encoder`` (mean-pooled, linear head) on ``train``; the run's test curve and its result.

    ``eval_every`` defaults to a tenth of ``steps``; the training itself does not depend on it.
    """
    torch.manual_seed(seed)  # the head's initialisation
    classifier = SequenceClassifier(encoder, encoder.config.d_model, num_labels=2, pooling="mean")
    every = eval_every or max(1, steps // 10)
    run = fine_tune(classifier, train, test, batch_size=BATCH, steps=steps, lr=lr, eval_every=every, seed=seed)
    return {"seed": seed, "lr": lr, "steps": run.steps, "accuracy": run.accuracy, "final": run.final()}


def measure(seeds: Sequence[int] = (0, 1, 2), sizes: Sequence[int] = SIZES) -> dict:
    """The whole chapter-09 measurement: the lr sweep (n = 64, seed 0, development set), then every run."""
    start_time = time.time()
    pretrained, tokenizer = load_minilm()
    tasks = {"pool": ToyLanguage(seed=21).sentiment_task(max(sizes)), "dev": ToyLanguage(seed=22).sentiment_task(200),
             "test": ToyLanguage(seed=23).sentiment_task(400)}  # fmt: skip
    used = {i for items in tasks.values() for item in items for i in tokenizer.encode(item.text)}
    compact, remap = compact_vocabulary(pretrained, sorted(used))
    data = {name: encode_items(items, tokenizer, remap) for name, items in tasks.items()}

    def encoder(start: str, seed: int) -> BertModel:
        if start == "pre-trained":
            return _copy(compact)
        torch.manual_seed(seed)
        return BertModel(compact.config, add_pooling_layer=compact.pooler is not None)  # same architecture

    def subset(n: int) -> dict[str, Tensor]:
        return {k: v[:n] for k, v in data["pool"].items()}

    sweep: dict[str, dict[str, float]] = {}
    steps = steps_for_epochs(64, BATCH, EPOCHS, MIN_STEPS)
    for start, lrs in LRS.items():
        sweep[start] = {
            str(lr): run_one(encoder(start, 0), subset(64), data["dev"], lr, 0, steps)["final"] for lr in lrs
        }
    best = {start: float(max(scores, key=scores.get)) for start, scores in sweep.items()}
    runs = {start: {str(n): [run_one(encoder(start, s), subset(n), data["test"], best[start], s,
                                     steps_for_epochs(n, BATCH, EPOCHS, MIN_STEPS)) for s in seeds] for n in sizes}
            for start in LRS}  # fmt: skip
    return {
        "task": "toy sentiment (ToyLanguage seeds 21 pool, 22 dev, 23 test)",
        "architecture": {"n_layers": compact.config.n_layers, "d_model": compact.config.d_model,
                         "parameters_full_vocabulary": pretrained.num_parameters(), "vocabulary_kept": len(used) + 1},
        "protocol": {"batch": BATCH, "epochs": EPOCHS, "min_steps": MIN_STEPS, "sweep_n": 64, "lrs": LRS},
        "sweep_dev_accuracy": sweep, "best_lr": best, "seeds": list(seeds), "sizes": list(sizes), "runs": runs,
        "seconds": round(time.time() - start_time), "threads": torch.get_num_threads(),
    }  # fmt: skip


def _copy(model: BertModel) -> BertModel:
    fresh = BertModel(model.config, add_pooling_layer=model.pooler is not None)
    fresh.load_state_dict(model.state_dict())
    return fresh


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the results JSON file to write")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per (start, number of labels)")
    args = parser.parse_args(argv)
    results = measure(seeds=tuple(range(args.seeds)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
