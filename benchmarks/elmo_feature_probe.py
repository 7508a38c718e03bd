"""Do frozen ELMo features hold what the sentence tasks ask? Chapter 08's diagnosis of frozen ELMo at chance.

In the course run, ELMo used as ELMo (frozen biLM, a learned scalar mix of its layers, mean pooling, one
linear layer, 256 labelled items, 150 steps) stays at chance on sentiment, acceptability and continuation.
This script asks whether the information is missing from the features or just not read by that head. It
pre-trains the head-to-head's ELMo for one seed (the committed run's model, bit for bit), freezes it, and
fits probes on the mean over the sentence of *every* layer side by side ([x; x], then [fwd; bwd] per layer):
a linear probe (logistic regression) and a one-hidden-layer MLP (256 ReLU units), each on the first 256
and on 2,000 labelled items of a generator seeded apart from the test items, which are the committed run's
own test sets. Both probes: standardised features, full-batch Adam (lr 1e-2, weight decay 1e-4), 1,500
steps, seed 0. Writes one JSON:

    python benchmarks/elmo_feature_probe.py --out notebooks/results/elmo-feature-probe [--seed 0]

About 2 minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from bertcourse.data.toylang import TaskItem
from bertcourse.experiments.finetune import task_items
from bertcourse.experiments.head_to_head import evaluation_sets, pretrain
from bertcourse.experiments.setup import EVAL_SEED, PRESETS, language, pretraining_corpus
from bertcourse.tokenizers import Tokenizer

TASKS = ("sentiment", "acceptability", "continuation")
TRAIN_SIZES = (256, 2000)
PROBE_STEPS = 1500


@torch.no_grad()
def features(model: nn.Module, tokenizer: Tokenizer, items: list[TaskItem]) -> Tensor:
    """(N, (L + 1) * 2 d_model): each item's layer stack, every layer side by side, averaged over its tokens."""
    rows = []
    for item in items:
        ids = torch.tensor([tokenizer.encode(item.text, item.text_pair)])  # (1, T)
        stack = torch.cat(model(ids).hidden_states, dim=-1)  # L + 1 of (1, T, 2 d) -> (1, T, (L + 1) 2 d)
        rows.append(stack[0].mean(dim=0))
    return torch.stack(rows)


def probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, hidden: int) -> dict[str, float]:
    """Accuracy on the training and the test items of a linear probe (``hidden`` 0) or a one-hidden-layer MLP."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    width = train_x.shape[1]
    if hidden:
        net: nn.Module = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    else:
        net = nn.Linear(width, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(PROBE_STEPS):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(train_x), train_y).backward()
        optimizer.step()
    with torch.no_grad():
        return {
            "train": (net(train_x).argmax(dim=1) == train_y).float().mean().item(),
            "test": (net(test_x).argmax(dim=1) == test_y).float().mean().item(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = PRESETS["course"]
    corpus, sets = pretraining_corpus(preset), evaluation_sets(preset)
    model, _ = pretrain("elmo", preset, corpus, args.seed)
    model.eval()
    result: dict[str, object] = {"seed": args.seed, "preset": preset.name, "probe_steps": PROBE_STEPS, "tasks": {}}
    for k, task in enumerate(TASKS, start=1):
        test_items = sets.tasks[task][1]
        train_items = task_items(task, language(preset, EVAL_SEED + 100 + k), max(TRAIN_SIZES))
        train_x, test_x = features(model, corpus.tokenizer, train_items), features(model, corpus.tokenizer, test_items)
        train_y = torch.tensor([int(it.label) for it in train_items])  # type: ignore[arg-type]
        test_y = torch.tensor([int(it.label) for it in test_items])  # type: ignore[arg-type]
        share = test_y.float().mean().item()
        rows: dict[str, object] = {"test_items": len(test_items), "majority": max(share, 1 - share)}
        for n in TRAIN_SIZES:
            for name, hidden in (("linear", 0), ("mlp", 256)):
                rows[f"{name}, {n} labels"] = probe(train_x[:n], train_y[:n], test_x, test_y, hidden)
        result["tasks"][task] = rows  # type: ignore[index]
        print(task, json.dumps(rows), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
