"""Aggregate per-seed runs into ``results.json`` (schema in ``bertcourse.compare``) and check that schema."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bertcourse.data.toylang import CLOZE_CUES
from bertcourse.experiments.setup import ROWS

__all__ = ["aggregate", "paired", "stat", "t_quantile_975", "validate_results"]


_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t quantile t_{0.975, df} for df = 1..30 (every statistics table's values)."""


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (the table, then Cornish-Fisher)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # the normal quantile; the expansion is good to 1e-4 beyond df = 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def stat(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "ci95"}`` of ``values``: the sample standard deviation (n - 1, 0 for one value)
    and the 95% confidence interval of the mean, mean +- t_{0.975, n-1} std / sqrt(n) (None for one value)."""
    if not values:
        raise ValueError("values must not be empty")
    values = [float(v) for v in values]
    n, mean = len(values), statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_quantile_975(n - 1) * std / n**0.5 if n > 1 else None
    ci95 = [mean - half, mean + half] if half is not None else None
    return {"mean": mean, "std": std, "n": n, "ci95": ci95}


def _stats_of(runs: Sequence[Mapping[str, Any]], path: Sequence[str]) -> dict[str, Any]:
    """{key: stat over runs} for the dict of numbers found at ``path`` in each run."""

    def at(run: Mapping[str, Any]) -> Mapping[str, Any]:
        node: Any = run
        for key in path:
            node = node[key]
        return node

    keys = list(at(runs[0]))
    return {k: stat([at(r)[k] for r in runs]) for k in keys}


def _finetune(runs: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in runs[0][key]:
        out[task] = {
            **stat([r[key][task]["accuracy"] for r in runs]),
            "by_cue": _stats_of(runs, (key, task, "by_cue")),
        }
    return out


def _mean_matrix(matrices: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    n = len(matrices)
    return [[sum(m[i][j] for m in matrices) / n for j in range(len(matrices[0][0]))] for i in range(len(matrices[0]))]


def aggregate(runs: Mapping[str, Sequence[Mapping[str, Any]]], header: Mapping[str, Any]) -> dict[str, Any]:
    """``results.json`` from ``runs[model]`` = that model's per-seed run records, plus ``header`` fields."""
    models: dict[str, Any] = {}
    for name, model_runs in runs.items():
        if not model_runs:
            continue
        first = model_runs[0]
        influence = {}
        for part, record in first["influence"].items():
            influence[part] = {
                "tokens": record["tokens"],
                "matrix": _mean_matrix([r["influence"][part]["matrix"] for r in model_runs]),
                "left": stat([r["influence"][part]["left"] for r in model_runs]),
                "right": stat([r["influence"][part]["right"] for r in model_runs]),
            }
        models[name] = {
            "parameters": first["parameters"],
            "config": first["config"],
            "seeds": [r["seed"] for r in model_runs],
            "cloze": _stats_of(model_runs, ("cloze",)),
            "cloze_curve": {step: _stats_of(model_runs, ("cloze_curve", step)) for step in first["cloze_curve"]},
            "finetune": _finetune(model_runs, "finetune"),
            "pretrain": {
                "steps": first["pretrain"]["steps"],
                "tokens": first["pretrain"]["tokens"],
                **({"flops": first["pretrain"]["flops"]} if "flops" in first["pretrain"] else {}),
                **_stats_of(model_runs, ("pretrain", "measured")),
            },
            "forward_ms": _stats_of(model_runs, ("forward_ms",)),
            "influence": influence,
        }
        for key in ("variant", "use"):  # the row's pre-training recipe and fine-tuning (runs since they were rows)
            if key in first:
                models[name][key] = first[key]
        if all("finetune_random" in r for r in model_runs):  # main rows: also fine-tuned from random weights
            models[name]["finetune_random"] = _finetune(model_runs, "finetune_random")
            models[name]["pretraining_gain"] = {
                task: stat(
                    [r["finetune"][task]["accuracy"] - r["finetune_random"][task]["accuracy"] for r in model_runs]
                )
                for task in first["finetune"]
            }
        for key in ("interaction", "probe"):  # joint bidirectionality: in runs made since they were measured
            if all(key in r for r in model_runs):
                models[name][key] = stat([r[key] for r in model_runs])
        if all("cloze_sentence" in r for r in model_runs):
            models[name]["cloze_sentence"] = _stats_of(model_runs, ("cloze_sentence",))
    return {**header, "models": models, "paired": paired(runs)}


def paired(runs: Mapping[str, Sequence[Mapping[str, Any]]], reference: str = "bert") -> dict[str, Any]:
    """Differences paired by seed: ``{"bert - m": {"cloze": {cue: stat}, "finetune": {task: stat}}}`` for
    every other row ``m`` with the seeds of ``reference``; a seed's two runs share its data order and
    evaluation items, so the paired interval is narrower than the two rows' intervals side by side."""
    if reference not in runs:
        return {}
    ref = {r["seed"]: r for r in runs[reference]}
    out: dict[str, Any] = {}
    for name, model_runs in runs.items():
        pairs = [(ref[r["seed"]], r) for r in model_runs if r["seed"] in ref and name != reference]
        if not pairs:
            continue
        a0, b0 = pairs[0]
        out[f"{reference} - {name}"] = {
            "seeds": [b["seed"] for _, b in pairs],
            "cloze": {cue: stat([a["cloze"][cue] - b["cloze"][cue] for a, b in pairs]) for cue in a0["cloze"]},
            "finetune": {
                task: stat([a["finetune"][task]["accuracy"] - b["finetune"][task]["accuracy"] for a, b in pairs])
                for task in a0["finetune"]
                if task in b0["finetune"]
            },
        }
    return out


def validate_results(results: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first field where ``results`` departs from the documented schema."""

    def need(node: Any, key: str, where: str) -> Any:
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"results{where} lacks {key!r}")
        return node[key]

    def check_stat(node: Any, where: str) -> None:
        for key, kind in (("mean", float), ("std", float), ("n", int)):
            value = need(node, key, where)
            if not isinstance(value, (int, float) if kind is float else int) or isinstance(value, bool):
                raise ValueError(f"results{where}[{key!r}] must be a number, got {value!r}")
        ci = node.get("ci95", "missing") if isinstance(node, Mapping) else "missing"
        if ci == "missing" or (ci is None) != (node["n"] == 1):
            raise ValueError(f"results{where}['ci95'] must be [lo, hi] (None for one seed), got {ci!r}")
        if ci is not None and not (len(ci) == 2 and ci[0] <= node["mean"] <= ci[1]):
            raise ValueError(f"results{where}['ci95'] must be [lo, hi] around the mean, got {ci!r}")

    models = need(results, "models", "")
    chance = need(need(results, "chance", ""), "cloze", "['chance']")
    for cue in CLOZE_CUES:
        if not isinstance(need(chance, cue, "['chance']['cloze']"), float):
            raise ValueError(f"results['chance']['cloze'][{cue!r}] must be a float")
    for name, model in models.items():
        if name not in ROWS:
            raise ValueError(f"results['models'] has an unknown model {name!r}")
        where = f"['models'][{name!r}]"
        if not isinstance(need(model, "parameters", where), int):
            raise ValueError(f"results{where}['parameters'] must be an int")
        for cue in CLOZE_CUES:
            check_stat(need(need(model, "cloze", where), cue, f"{where}['cloze']"), f"{where}['cloze'][{cue!r}]")
        curve = need(model, "cloze_curve", where)
        if not isinstance(curve, Mapping) or "0" not in curve or not all(str(k).isdigit() for k in curve):
            raise ValueError(f"results{where}['cloze_curve'] must map steps '0', ... to cloze accuracies")
        for step, point in curve.items():
            at = f"{where}['cloze_curve'][{step!r}]"
            for cue in CLOZE_CUES:
                check_stat(need(point, cue, at), f"{at}[{cue!r}]")
        for task, entry in need(model, "finetune", where).items():
            check_stat(entry, f"{where}['finetune'][{task!r}]")
            for cue, by_cue in need(entry, "by_cue", f"{where}['finetune'][{task!r}]").items():
                check_stat(by_cue, f"{where}['finetune'][{task!r}]['by_cue'][{cue!r}]")
        for key in ("interaction", "probe"):
            if key in model:
                check_stat(model[key], f"{where}[{key!r}]")
        for cue, entry in model.get("cloze_sentence", {}).items():
            check_stat(entry, f"{where}['cloze_sentence'][{cue!r}]")
    for pair, entry in results.get("paired", {}).items():
        for part in ("cloze", "finetune"):
            for key, value in need(entry, part, f"['paired'][{pair!r}]").items():
                check_stat(value, f"['paired'][{pair!r}][{part!r}][{key!r}]")
