"""Tables and figures of a head-to-head ``results.json``: Markdown for the README and issues, PNGs for the chapter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bertcourse.data.toylang import CLOZE_CUES
from bertcourse.plotting import PALETTE, use_style

__all__ = [
    "cloze_table",
    "cost_table",
    "finetune_table",
    "gain_table",
    "markdown",
    "paired_table",
    "plot_cloze",
    "plot_cloze_curve",
    "plot_cost",
    "plot_finetune",
    "plot_gain",
    "plot_influence",
    "save_plots",
    "table5",
]

Results = Mapping[str, Any]
NAMES = {
    "elmo": "ELMo",
    "gpt": "GPT",
    "bert": "BERT",
    "bert-no-nsp": "BERT, no NSP",
    "bert-mask15": "BERT, 15% masked",
    "bert-post-ln": "BERT, paper's block",
    "ltr-bilstm": "LTR + BiLSTM",
    "elmo-finetuned": "ELMo, fine-tuned",
    "elmo-bilstm": "ELMo, frozen + BiLSTM",
    "bert-joint": "BERT, designed for the joint cue",
}
COLORS = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(("bert", "gpt", "elmo", *list(NAMES)[3:]))}
MAIN = ("elmo", "gpt", "bert")
"""The three main rows, drawn in the figures; every row is in the tables."""


def _main(results: Results) -> dict[str, Any]:
    """The main rows of ``results`` (every row when it has none of them, e.g. ``--models bert-joint``)."""
    main = {n: m for n, m in results["models"].items() if n in MAIN}
    return main or dict(results["models"])


def _gained(results: Results) -> dict[str, Any]:
    """The rows fine-tuned from random weights too (the main rows), which have a pre-training gain."""
    return {n: m for n, m in _main(results).items() if "pretraining_gain" in m}


def _cell(s: Mapping[str, Any]) -> str:
    """``mean ± std [95% CI]`` over seeds (the mean alone for one seed; older results without ``ci95``)."""
    if s["n"] == 1:
        return f"{s['mean']:.2f}"
    ci = s.get("ci95")
    return f"{s['mean']:.2f} ± {s['std']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _header(results: Results, first: str) -> list[str]:
    names = [NAMES.get(m, m) for m in results["models"]]
    return [f"| {first} | " + " | ".join(names) + " |", "| --- " * (first.count("|") + 1) + "| --- " * len(names) + "|"]


def cloze_table(results: Results) -> str:
    """Markdown: cloze accuracy per cue side, chance first."""
    models = results["models"].values()
    lines = _header(results, "cue | chance")
    for cue in CLOZE_CUES:
        row = [_cell(m["cloze"][cue]) for m in models]
        lines.append(f"| {cue} | {results['chance']['cloze'][cue]:.2f} | " + " | ".join(row) + " |")
    gpt = results["models"].get("gpt", {})
    if "cloze_sentence" in gpt:  # GPT scoring whole sentences: what left-to-right costs is not LM scoring
        lines.append("")
        lines.append("GPT scoring each candidate by the probability of the whole sentence: " + ", ".join(
            f"{cue} {_cell(gpt['cloze_sentence'][cue])}" for cue in CLOZE_CUES
        ) + ".")  # fmt: skip
    return "\n".join(lines) + "\n"


def finetune_table(results: Results, key: str = "finetune") -> str:
    """Markdown: fine-tuned accuracy per task, overall (``all``) and by cue; ``key`` may be ``finetune_random``."""
    models = list(results["models"].values())
    lines = _header(results, "task | cue | chance")
    for task in models[0][key]:
        chance = f"{results['chance']['finetune'][task]:.2f}"
        lines.append(f"| {task} | all | {chance} | " + " | ".join(_cell(m[key][task]) for m in models) + " |")
        for cue in models[0][key][task]["by_cue"]:
            lines.append(f"| | {cue} | | " + " | ".join(_cell(m[key][task]["by_cue"][cue]) for m in models) + " |")
    return "\n".join(lines) + "\n"


def gain_table(results: Results) -> str:
    """Markdown: per task, accuracy from random weights -> from pre-trained weights (the gain), main rows."""
    main = _gained(results)
    if not main:
        return "(no row of these results was fine-tuned from random weights)\n"
    models = list(main.values())
    lines = _header({"models": main}, "task")
    for task in models[0]["finetune"]:
        cells = [
            f"{_cell(m['finetune_random'][task])} → {_cell(m['finetune'][task])} ({_cell(m['pretraining_gain'][task])})"
            for m in models
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cost_table(results: Results) -> str:
    """Markdown: parameters, pre-training tokens, seconds and tokens/s, forward time per length."""
    models = list(results["models"].values())
    lines = _header(results, "")
    lines.append("| parameters | " + " | ".join(f"{m['parameters']:,}" for m in models) + " |")
    lines.append("| pre-training tokens | " + " | ".join(f"{m['pretrain']['tokens']:,}" for m in models) + " |")
    lines.append("| pre-training seconds | " + " | ".join(_cell(m["pretrain"]["seconds"]) for m in models) + " |")
    rates = [f"{m['pretrain']['tokens_per_second']['mean']:,.0f}" for m in models]
    lines.append("| tokens / s | " + " | ".join(rates) + " |")
    for T in models[0]["forward_ms"]:
        lines.append(f"| forward ms, T={T} | " + " | ".join(f"{m['forward_ms'][T]['mean']:.1f}" for m in models) + " |")
    return "\n".join(lines) + "\n"


def joint_table(results: Results) -> str:
    """Deep bidirectionality at the `both` blank: the relative interaction and the frozen and/but probe."""
    names = [n for n, m in results["models"].items() if "interaction" in m]
    if not names:
        return "(not measured in these runs)\n"
    lines = ["| measure | " + " | ".join(NAMES.get(n, n) for n in names) + " |", "| --- |" + " --- |" * len(names)]
    cells = {"interaction": _small, "probe": _cell}  # the interaction spans orders of magnitude: 2 significant digits
    for key, label in (("interaction", "interaction (relative)"), ("probe", "linear probe, and/but accuracy")):
        lines.append(f"| {label} | " + " | ".join(cells[key](results["models"][n][key]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def table5(results: Results) -> str:
    """BERT's Table 5 in miniature: every row's cloze by cue and fine-tuning by task, mean [95% CI]."""
    models = results["models"]
    tasks = list(next(iter(models.values()))["finetune"])
    columns = [f"cloze {c}" for c in CLOZE_CUES] + tasks
    lines = ["| row | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, m in models.items():
        cells = [_short(m["cloze"][c]) for c in CLOZE_CUES] + [_short(m["finetune"][t]) for t in tasks]
        lines.append(f"| {NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(results: Results) -> str:
    """Differences paired by seed, BERT minus each other row: mean [95% CI] per cue and task."""
    pairs = results.get("paired", {})
    if not pairs:
        return "(no paired comparison in these results)\n"
    first = next(iter(pairs.values()))
    columns = [f"cloze {c}" for c in first["cloze"]] + list(first["finetune"])
    lines = ["| BERT minus | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for pair, entry in pairs.items():
        other = pair.split(" - ", 1)[1]
        cells = [_short(entry["cloze"][c]) for c in first["cloze"]] + [
            _short(entry["finetune"][t]) for t in first["finetune"]
        ]
        lines.append(f"| {NAMES.get(other, other)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _small(s: Mapping[str, Any]) -> str:
    """``mean [lo, hi]`` to two significant digits, for a statistic far below 1 (the interaction)."""
    ci = s.get("ci95")
    return f"{s['mean']:.2g}" + (f" [{ci[0]:.2g}, {ci[1]:.2g}]" if ci else "")


def _short(s: Mapping[str, Any]) -> str:
    """``mean [lo, hi]`` (the mean alone for one seed): a compact cell for the wide tables."""
    ci = s.get("ci95")
    return f"{s['mean']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def markdown(results: Results) -> str:
    """The whole report: cloze, fine-tuning, pre-training-gain and cost tables (mean ± std over seeds)."""
    seeds = results["seeds"]
    return "\n".join(
        [
            f"# ELMo vs GPT vs BERT: preset `{results['preset']}`, seeds {seeds}, device {results['device']}",
            "",
            f"Command: `{results['command']}`. Mean ± sample std [95% confidence interval of the mean] over "
            f"{len(seeds)} seed(s); accuracies.",
            "",
            "## Cloze by cue side",
            "",
            cloze_table(results),
            "## Fine-tuning (from pre-trained weights)",
            "",
            finetune_table(results),
            "## Pre-training gain: from random weights → from pre-trained weights (difference)",
            "",
            gain_table(results),
            "## Every row: BERT's Table 5 in miniature (mean [95% CI])",
            "",
            table5(results),
            "## Paired by seed: BERT minus each row (mean [95% CI] of the per-seed differences)",
            "",
            paired_table(results),
            "## Deep bidirectionality at the `both` blank",
            "",
            joint_table(results),
            "## Cost",
            "",
            cost_table(results),
        ]
    )


def _bars(ax: Any, groups: list[str], models: Results, values: Any, errors: Any) -> None:
    width = 0.8 / len(models)
    x = np.arange(len(groups))
    for k, name in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values[name], width, yerr=errors[name], capsize=3,
               label=NAMES.get(name, name), color=COLORS[name])  # fmt: skip
    ax.set_xticks(x, groups)


def plot_cloze(results: Results) -> Figure:
    """Cloze accuracy by cue side, one bar per model with its std over seeds, and the chance line."""
    use_style()
    models = _main(results)
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    _bars(ax, list(CLOZE_CUES), models, {m: [v["cloze"][c]["mean"] for c in CLOZE_CUES] for m, v in models.items()},
          {m: [v["cloze"][c]["std"] for c in CLOZE_CUES] for m, v in models.items()})  # fmt: skip
    chance = [results["chance"]["cloze"][c] for c in CLOZE_CUES]
    for i, c in enumerate(chance):
        ax.hlines(c, i - 0.45, i + 0.45, colors="k", linestyles="dashed", label="chance" if i == 0 else None)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("where the deciding cue is")
    ax.set_ylabel("cloze accuracy")
    ax.set_title("Fill in the blank with each model's own LM head")
    ax.legend(ncol=4, loc="lower left", fontsize=8)
    return fig


def plot_cloze_curve(results: Results, x: str = "step", rows: tuple[str, ...] = (*MAIN, "bert-mask15")) -> Figure:
    """Cloze accuracy during pre-training, one panel per cue side: mean over seeds, ± one std shaded.

    ``x``: ``step`` (equal steps) or ``flops`` (equal compute: the step's share of the run's training
    FLOPs, ``pretrain.flops``). ``rows``: the rows drawn, those of ``results`` among them."""
    if x not in ("step", "flops"):
        raise ValueError(f"x must be 'step' or 'flops', got {x!r}")
    use_style()
    models = {n: m for n, m in results["models"].items() if n in rows} or dict(results["models"])
    fig, axes = plt.subplots(1, len(CLOZE_CUES), figsize=(11, 2.9), sharey=True, layout="constrained")
    for ax, cue in zip(axes, CLOZE_CUES, strict=True):
        for name, m in models.items():
            steps = sorted(int(s) for s in m["cloze_curve"])
            scale = m["pretrain"]["flops"] / m["pretrain"]["steps"] if x == "flops" else 1.0
            mean = np.array([m["cloze_curve"][str(s)][cue]["mean"] for s in steps])
            std = np.array([m["cloze_curve"][str(s)][cue]["std"] for s in steps])
            at = np.array(steps) * scale
            ax.plot(at, mean, marker=".", label=NAMES.get(name, name), color=COLORS[name])
            ax.fill_between(at, mean - std, mean + std, color=COLORS[name], alpha=0.2, linewidth=0)
        ax.axhline(results["chance"]["cloze"][cue], color="k", linestyle="dashed", linewidth=1)
        ax.set_title(f"cue: {cue}")
        ax.set_xlabel("pre-training step" if x == "step" else "training FLOPs")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("cloze accuracy")
    axes[0].legend(loc="lower right", fontsize=8)
    return fig


def plot_finetune(results: Results, key: str = "finetune") -> Figure:
    """Fine-tuning accuracy per task (``key``: ``finetune`` or ``finetune_random``), with std over seeds."""
    use_style()
    models = _main(results)
    tasks = list(next(iter(models.values()))[key])
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    _bars(ax, tasks, models, {m: [v[key][t]["mean"] for t in tasks] for m, v in models.items()},
          {m: [v[key][t]["std"] for t in tasks] for m, v in models.items()})  # fmt: skip
    for i, t in enumerate(tasks):
        chance = results["chance"]["finetune"][t]
        ax.hlines(chance, i - 0.45, i + 0.45, colors="k", linestyles="dashed", label="chance" if i == 0 else None)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title("Fine-tuned under one head, same steps" + (" (random init)" if key == "finetune_random" else ""))
    ax.legend(ncol=4, loc="lower left", fontsize=8)
    return fig


def plot_gain(results: Results) -> Figure:
    """What pre-training buys: fine-tuned accuracy from random weights (light) and from pre-trained ones."""
    use_style()
    models = _gained(results)
    if not models:
        raise ValueError("results has no row fine-tuned from random weights (finetune_random)")
    tasks = list(next(iter(models.values()))["finetune"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.2 * len(tasks) + 0.6, 3.2), layout="constrained", squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for k, (name, m) in enumerate(models.items()):
            low, high = m["finetune_random"][task], m["finetune"][task]
            ax.bar(k - 0.18, low["mean"], 0.36, yerr=low["std"], color=COLORS[name], alpha=0.35, capsize=2)
            ax.bar(k + 0.18, high["mean"], 0.36, yerr=high["std"], color=COLORS[name], capsize=2)
        ax.axhline(results["chance"]["finetune"][task], color="k", linestyle="dashed", linewidth=1)
        ax.set_xticks(range(len(models)), [NAMES.get(n, n) for n in models])
        ax.set_ylim(0, 1.05)
        ax.set_title(task)
    axes[0][0].set_ylabel("accuracy: random init (light) vs pre-trained")
    return fig


def plot_influence(results: Results) -> Figure:
    """The measured influence matrices, rows normalised to their maximum: ELMo's two directions, GPT, BERT."""
    use_style()
    panels = []
    for name, m in _main(results).items():
        parts = ("forward", "backward") if name == "elmo" else ("all",)
        for part in parts:
            title = NAMES.get(name, name) + (f" ({part} LM)" if part != "all" else "")
            panels.append((title, m["influence"][part]))
    T = len(panels[0][1]["tokens"])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(0.33 * T * len(panels) + 1.2, 0.33 * T + 1.4), layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, (title, record) in zip(axes, panels, strict=True):
        matrix = np.asarray(record["matrix"])
        matrix = matrix / np.maximum(matrix.max(axis=1, keepdims=True), 1e-30)  # each row on [0, 1]
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(T), record["tokens"], rotation=90, fontsize=7)
        ax.set_yticks(range(T), record["tokens"], fontsize=7)
        ax.grid(False)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("input word j")
    axes[0].set_ylabel("representation of word i")
    fig.colorbar(image, ax=list(axes), shrink=0.6, label="||d h_i / d e_j|| / row max")
    return fig


def plot_cost(results: Results) -> Figure:
    """Forward time against sequence length (log-log), one line per model."""
    use_style()
    fig, ax = plt.subplots(figsize=(5, 3.4), layout="constrained")
    for name, m in _main(results).items():
        lengths = [int(T) for T in m["forward_ms"]]
        ax.errorbar(lengths, [m["forward_ms"][str(T)]["mean"] for T in lengths],
                    yerr=[m["forward_ms"][str(T)]["std"] for T in lengths], marker="o", label=NAMES.get(name, name),
                    color=COLORS[name], capsize=2)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("forward ms (batch 8)")
    ax.set_title(f"Cost on {results['device']}")
    ax.legend()
    return fig


def save_plots(results: Results, out: str | Path) -> list[Path]:
    """Write cloze.png, cloze_curve.png, finetune.png, gain.png, influence.png and cost.png into ``out``."""
    out = Path(out)
    paths = []
    for name, make in (("cloze", plot_cloze), ("cloze_curve", plot_cloze_curve), ("finetune", plot_finetune),
                       ("gain", plot_gain), ("influence", plot_influence), ("cost", plot_cost)):  # fmt: skip
        if name == "gain" and not _gained(results):
            continue
        fig = make(results)
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
