"""Figure helpers: the right number of images, labels and colour bars, faithful pixels, clear errors on bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bertcourse.attention import causal_mask
from bertcourse.plotting import plot_attention, plot_mask, plot_visibility, use_style

TOKENS = ["the", "bank", "of", "the", "river"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def test_plot_attention_draws_the_weights_with_labels_and_a_colour_bar() -> None:
    weights = torch.softmax(torch.randn(3, 5), dim=-1)
    ax = plot_attention(weights, x_labels=TOKENS, y_labels=TOKENS[:3], title="weights")
    assert len(ax.images) == 1
    np.testing.assert_allclose(ax.images[0].get_array(), weights.numpy(), rtol=1e-6)
    assert ax.images[0].get_clim() == (0.0, 1.0)  # a fixed scale, so two heatmaps compare by eye
    assert tick_texts(ax.get_xticklabels()) == TOKENS
    assert tick_texts(ax.get_yticklabels()) == TOKENS[:3]
    assert ax.get_title() == "weights"
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar


def test_plot_attention_annotates_every_cell_and_draws_on_given_axes() -> None:
    _, (left, right) = plt.subplots(1, 2)
    weights = np.full((2, 4), 0.25)
    ax = plot_attention(weights, ax=right, annotate=True)
    assert ax is right and len(left.images) == 0
    assert [t.get_text() for t in ax.texts] == ["0.25"] * 8
    assert tick_texts(ax.get_xticklabels()) == ["0", "1", "2", "3"]


def test_plot_mask_uses_two_colours_for_a_boolean_mask() -> None:
    mask = causal_mask(4)
    ax = plot_mask(mask, TOKENS[:4], TOKENS[:4], title="causal")
    np.testing.assert_array_equal(ax.images[0].get_array(), mask.float().numpy())
    colours = {tuple(np.round(ax.images[0].to_rgba(v), 3)) for v in (0.0, 1.0)}
    assert len(colours) == 2
    assert tick_texts(ax.figure.axes[-1].get_yticklabels()) == ["hidden", "may attend"]


def test_plot_visibility_has_one_panel_per_model() -> None:
    T = len(TOKENS)
    matrices = {"GPT": causal_mask(T), "BERT": torch.ones(T, T, dtype=torch.bool), "ELMo <-": causal_mask(T).T}
    fig = plot_visibility(matrices, TOKENS, title="context")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == list(matrices)
    for ax, matrix in zip(panels, matrices.values(), strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), matrix.float().numpy())
        assert tick_texts(ax.get_xticklabels()) == TOKENS
    assert len(fig.axes) == len(matrices) + 1  # plus one shared colour bar
    assert fig.get_suptitle() == "context"
    assert all(not ax.patches for ax in panels)


def test_plot_visibility_outlines_the_highlighted_cell_in_every_panel() -> None:
    matrices = {"GPT": causal_mask(5), "BERT": torch.ones(5, 5, dtype=torch.bool)}
    fig = plot_visibility(matrices, TOKENS, highlight=(1, 4))
    for ax in (ax for ax in fig.axes if ax.images):
        (box,) = ax.patches
        assert box.get_xy() == (3.5, 0.5)  # column 4, row 1, cells centred on integers


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: plot_attention(torch.rand(2, 3, 3)), "2-D"),
        (lambda: plot_attention([[0.5, 0.5]]), "torch.Tensor or numpy.ndarray"),
        (lambda: plot_attention(torch.rand(2, 3), x_labels=["a", "b"]), "x_labels has 2 labels"),
        (lambda: plot_attention(torch.rand(2, 3), y_labels=["a"]), "y_labels has 1 labels"),
        (lambda: plot_attention(torch.full((2, 2), 2.0)), r"\[0, 1\]"),
        (lambda: plot_attention(torch.tensor([[float("nan"), 1.0]])), "finite"),
        (lambda: plot_mask(torch.full((2, 2), 0.5)), "0/1"),
        (lambda: plot_visibility({}, TOKENS), "at least one"),
        (lambda: plot_visibility({"GPT": causal_mask(4)}, TOKENS), r"matrices\['GPT'\] must be \(T, T\)"),
        (lambda: plot_visibility({"GPT": causal_mask(0)}, []), "tokens must not be empty"),
        (lambda: plot_visibility({"x": torch.rand(5, 5)}, TOKENS), "0/1"),
        (lambda: plot_visibility({"GPT": causal_mask(5)}, TOKENS, highlight=(1, 5)), "highlight"),
        (lambda: use_style(dpi=0), "dpi"),
    ],
)
def test_bad_input_raises_a_value_error_naming_it(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_use_style_sets_the_course_defaults() -> None:
    with matplotlib.rc_context():
        use_style(dpi=72)
        assert matplotlib.rcParams["figure.dpi"] == 72
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == "#0072B2"
