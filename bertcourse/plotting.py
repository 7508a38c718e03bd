"""Figure helpers shared by the chapters: attention and mask heatmaps, and the "what context each model sees" grid.

One look everywhere: :func:`use_style` sets the course's matplotlib defaults (moderate dpi so committed
notebooks stay small, a colour-blind-safe cycle), attention weights use :data:`ATTENTION_CMAP` on a fixed
[0, 1] scale so two heatmaps can be compared by eye, and boolean masks use two colours, one for
"may attend" and one for "hidden".

Conventions: a matrix is (L_q, L_k) with rows = queries (the token being represented) and columns =
keys (the tokens it may read), the layout of ``softmax(Q K^T / sqrt(d_k))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

__all__ = [
    "ATTENTION_CMAP",
    "MASK_CMAP",
    "PALETTE",
    "plot_attention",
    "plot_mask",
    "plot_visibility",
    "use_style",
]

PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe-Ito colours: distinguishable with every common colour-vision deficiency."""

ATTENTION_CMAP = "Blues"
"""Colour map for attention weights in [0, 1]: white = 0, dark blue = 1."""

MASK_CMAP = ListedColormap(["#F2F2F2", PALETTE[0]], name="course_mask")
"""Two colours for boolean masks: light grey = hidden (False), blue = may attend (True)."""

ArrayLike = Tensor | np.ndarray


def use_style(dpi: int = 80) -> None:
    """Set the course's matplotlib defaults: moderate ``dpi``, light grid, the :data:`PALETTE` colour cycle."""
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    mpl.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.facecolor": "white",
            "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.frameon": False,
        }
    )


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float NumPy copy of a tensor or array; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    elif isinstance(x, np.ndarray):
        x = x.astype(np.float32)
    else:
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (L_q, L_k) matrix, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _check_labels(labels: Sequence[str] | None, n: int, name: str) -> None:
    if labels is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels but the matrix has {n} along that axis")


def _tick_labels(labels: Sequence[str] | None, n: int) -> list[str]:
    return [str(i) for i in range(n)] if labels is None else [str(label) for label in labels]


def _heatmap(
    matrix: np.ndarray,
    ax: Axes,
    x_labels: Sequence[str] | None,
    y_labels: Sequence[str] | None,
    title: str | None,
    **imshow_kwargs: object,
) -> None:
    """Draw ``matrix`` on ``ax``: keys along x, queries along y, labelled ticks, no grid."""
    ax.imshow(matrix, aspect="equal", interpolation="nearest", **imshow_kwargs)
    ax.grid(False)
    L_q, L_k = matrix.shape
    ax.set_xticks(range(L_k), labels=_tick_labels(x_labels, L_k), rotation=45, ha="right")
    ax.set_yticks(range(L_q), labels=_tick_labels(y_labels, L_q))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title is not None:
        ax.set_title(title)


def _new_axes(ax: Axes | None, shape: tuple[int, int]) -> Axes:
    """``ax`` itself, or the axes of a new figure sized to a (L_q, L_k) matrix."""
    if ax is not None:
        return ax
    L_q, L_k = shape
    _, ax = plt.subplots(figsize=(1.2 + 0.45 * L_k, 0.8 + 0.45 * L_q), layout="constrained")
    return ax


def plot_attention(
    weights: ArrayLike,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = False,
) -> Axes:
    """Heatmap of attention weights (L_q, L_k) on a fixed [0, 1] colour scale, with a colour bar.

    Row i is query i's distribution over the keys, so each row of a softmax output sums to 1 (or to 0
    for a query that may attend to nothing). ``x_labels`` name the keys, ``y_labels`` the queries;
    ``annotate`` writes each weight, rounded to two decimals, in its cell. Returns the axes drawn on.
    """
    matrix = _as_matrix(weights, "weights")
    if matrix.min() < -1e-6 or matrix.max() > 1 + 1e-6:
        raise ValueError(f"weights must lie in [0, 1], got values in [{matrix.min():.3g}, {matrix.max():.3g}]")
    _check_labels(x_labels, matrix.shape[1], "x_labels")
    _check_labels(y_labels, matrix.shape[0], "y_labels")
    ax = _new_axes(ax, matrix.shape)
    _heatmap(matrix, ax, x_labels, y_labels, title, cmap=ATTENTION_CMAP, vmin=0.0, vmax=1.0)
    ax.figure.colorbar(ax.images[-1], ax=ax, label="attention weight", shrink=0.8)
    if annotate:
        for (i, j), w in np.ndenumerate(matrix):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=7, color="white" if w > 0.6 else "black")
    return ax


def plot_mask(
    mask: ArrayLike,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw a boolean mask (L_q, L_k), True = "query i may attend to key j", in the two :data:`MASK_CMAP` colours.

    Accepts booleans or 0/1 numbers; anything else raises ``ValueError``. Returns the axes drawn on.
    """
    matrix = _as_matrix(mask, "mask")
    if not np.isin(matrix, (0.0, 1.0)).all():
        raise ValueError("mask must hold only booleans or 0/1 values")
    _check_labels(x_labels, matrix.shape[1], "x_labels")
    _check_labels(y_labels, matrix.shape[0], "y_labels")
    ax = _new_axes(ax, matrix.shape)
    _heatmap(matrix, ax, x_labels, y_labels, title, cmap=MASK_CMAP, vmin=0.0, vmax=1.0)
    bar = ax.figure.colorbar(ax.images[-1], ax=ax, ticks=[0.25, 0.75], shrink=0.5)
    bar.ax.set_yticklabels(["hidden", "may attend"])
    return ax


def plot_visibility(
    matrices: Mapping[str, ArrayLike],
    tokens: Sequence[str],
    title: str | None = "Which context each model uses to represent a word",
    highlight: tuple[int, int] | None = None,
) -> Figure:
    """Side-by-side (T, T) visibility masks, one panel per model.

    Row i is the word being represented, column j a word its representation may depend on.

    ``matrices`` maps a panel title (a model, or one direction of ELMo) to a boolean or 0/1 matrix;
    ``tokens`` labels both axes. ``highlight=(i, j)`` outlines the cell "word i sees word j" in every panel.
    Returns the figure: one image per panel and one shared colour bar.
    """
    if not matrices:
        raise ValueError("matrices must name at least one model")
    T = len(tokens)
    if T == 0:
        raise ValueError("tokens must not be empty")
    if highlight is not None and not all(0 <= index < T for index in highlight):
        raise ValueError(f"highlight must be (i, j) with 0 <= i, j < T={T}, got {highlight}")
    checked: dict[str, np.ndarray] = {}
    for name, m in matrices.items():
        matrix = _as_matrix(m, f"matrices[{name!r}]")
        if matrix.shape != (T, T):
            raise ValueError(f"matrices[{name!r}] must be (T, T) = {(T, T)} for {T} tokens, got {matrix.shape}")
        if not np.isin(matrix, (0.0, 1.0)).all():
            raise ValueError(f"matrices[{name!r}] must hold only booleans or 0/1 values")
        checked[name] = matrix

    n = len(checked)
    fig, axes = plt.subplots(1, n, figsize=(0.4 + (0.38 * T + 0.5) * n, 0.9 + 0.38 * T), layout="constrained")
    axes = np.atleast_1d(axes)
    for i, (ax, (name, matrix)) in enumerate(zip(axes, checked.items(), strict=True)):
        _heatmap(matrix, ax, tokens, tokens, name, cmap=MASK_CMAP, vmin=0.0, vmax=1.0)
        ax.set_xlabel("context word")
        ax.set_ylabel("word represented" if i == 0 else "")
        if highlight is not None:
            row, col = highlight
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=PALETTE[1], linewidth=2.5))
    bar = fig.colorbar(axes[-1].images[-1], ax=list(axes), ticks=[0.25, 0.75], shrink=0.6)
    bar.ax.set_yticklabels(["hidden", "visible"])
    if title is not None:
        fig.suptitle(title)
    return fig
