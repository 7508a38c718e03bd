"""Checks for exercise 04 (ELMo): the LSTM cell, the length-aware reversal, and the scalar mix.

Oracles: ``torch.nn.LSTMCell`` loaded with the learner's weights (float64, random weights and biases,
non-zero states, input size != hidden size, batch > 1); a per-row loop for ``reverse_padded`` on
unequal lengths (one sequence unpadded, one of length 1); ``torch.softmax`` for ``scalar_mix``. One bug
fails the properties it breaks: the cell state and the hidden state are judged apart (a missing tanh
on the output breaks only h), the reversed part and the padding apart, the layer weights (with
gamma = 1) apart from gamma (judged by how the output scales with it). Hints come from evaluating the
usual mistakes on the same inputs.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from bertcourse.grading.framework import Answers, Exercise, Mistake, Task, compare, randn
from bertcourse.grading.kit import expect_tensors, first, unpack, variants

__all__ = ["EXERCISE", "check_lstm_cell", "check_reverse_padded", "check_scalar_mix"]

EXERCISE = Exercise("04_elmo.ipynb")

# ---------------------------------------------------------------------------------------------- lstm_cell

B, D, H = 3, 5, 4  # batch, input size, hidden size: all different, so a swapped axis cannot pass
GATES = "ifgo"


def _cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    order: str = GATES,
    candidate: str = "tanh",
    forget: str = "f * c",
    squash_cell: bool = True,
    use_h: bool = True,
    biases: int = 2,
) -> tuple[Tensor, Tensor]:
    """One LSTM step; the defaults are right, each knob reproduces one usual mistake.

    ``order`` names the gate held by each of the four row blocks of the weights.
    """
    pre = x @ w_ih.T + (h @ w_hh.T if use_h else 0) + (b_ih + b_hh if biases == 2 else b_ih)  # (B, 4H)
    blocks = dict(zip(order, pre.chunk(4, dim=-1), strict=True))  # 4 x (B, H)
    i, f, o = torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"])
    g = torch.tanh(blocks["g"]) if candidate == "tanh" else torch.sigmoid(blocks["g"])
    kept = {"f * c": f * c, "c": c, "none": torch.zeros_like(c), "(1 - f) * c": (1 - f) * c}[forget]
    c_new = kept + i * g
    h_new = o * torch.tanh(c_new) if squash_cell else o * c_new
    return h_new, c_new


CELL_MISTAKES = [  # (hint, the knobs of _cell that reproduce it)
    *[("the gates are read from the wrong row blocks of the weights: the blocks are stacked in the order the task "
       "gives (i, f, g, o), as nn.LSTMCell stores them", {"order": "".join(order)})
      for order in itertools.permutations(GATES) if "".join(order) != GATES],
    ("the candidate g goes through a sigmoid, so it can never be negative", {"candidate": "sigmoid"}),
    ("the forget gate is missing: the previous cell state is kept whole", {"forget": "c"}),
    ("the previous cell state c is dropped: c_new does not depend on c", {"forget": "none"}),
    ("the previous cell state is multiplied by (1 - f) instead of by the forget gate", {"forget": "(1 - f) * c"}),
    ("the tanh of the new cell state is missing: h_new multiplies the output gate by c_new itself",
     {"squash_cell": False}),
    ("the previous hidden state h has no effect: the recurrent term is missing", {"use_h": False}),
    ("only one of the two bias vectors is added", {"biases": 1}),
]  # fmt: skip


def _torch_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """The oracle: ``torch.nn.LSTMCell`` with these weights."""
    cell = nn.LSTMCell(w_ih.shape[1], w_hh.shape[1]).to(w_ih.dtype)
    with torch.no_grad():
        cell.load_state_dict({"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh})
        h_new, c_new = cell(x, (h, c))
    return h_new, c_new


@EXERCISE.task("lstm_cell", points=4)
def lstm_cell_task(t: Task) -> None:
    x, h, c = randn(B, D, seed=40), randn(B, H, seed=41), randn(B, H, seed=42) * 2  # non-zero states
    weights = (randn(4 * H, D, seed=43), randn(4 * H, H, seed=44), randn(4 * H, seed=45), randn(4 * H, seed=46))
    args = (x, h, c, *weights)
    on = f"x ({B}, {D}), h and c ({B}, {H}) non-zero, random weights and biases, float64"
    t.query("step", *args, keep_inputs=True)
    t.query("float32", *(a.float() for a in args))
    expected_h, expected_c = _torch_cell(*args)
    t.error_hint(
        r"mat1 and mat2 shapes cannot be multiplied|size mismatch|must match the size",
        "weight_ih is stored as (4H, D) and weight_hh as (4H, H), like nn.Linear's weight (output, input)",
    )

    def pair_of(a: Answers, query: str, dtype: torch.dtype) -> str | None:
        return expect_tensors(a[query], ("h_new", "c_new"), {"h_new": ((B, H), dtype), "c_new": ((B, H), dtype)})

    t.property(
        "returns a pair (h_new, c_new) of tensors (B, H) of the input's dtype", on=f"{on}, and float32", gated=True
    )(lambda a: pair_of(a, "step", torch.float64) or pair_of(a, "float32", torch.float32))

    def judge_part(a: Answers, index: int, expected: Tensor) -> str | None:
        pair = unpack(a["step"])
        if pair is None:
            return "expected a pair (h_new, c_new)"
        if compare(pair[1], expected_h) is None and compare(pair[0], expected_c) is None:
            return "the pair is returned as (c_new, h_new): the hidden state comes first, as in nn.LSTMCell"
        return compare(
            pair[index], expected, lambda: [(h, wrong[index]) for h, wrong in variants(_cell, CELL_MISTAKES, *args)]
        )

    t.property("c_new equals nn.LSTMCell's new cell state f * c + i * g", on=on)(lambda a: judge_part(a, 1, expected_c))
    t.property("h_new equals nn.LSTMCell's new hidden state o * tanh(c_new)", on=on)(
        lambda a: judge_part(a, 0, expected_h)
    )

    names = ("x", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    t.unchanged("step", dict(zip(names, args, strict=True)), on=on)


check_lstm_cell = EXERCISE.check("lstm_cell")

# ------------------------------------------------------------------------------------------ reverse_padded


def _reverse_oracle(x: Tensor, lengths: Tensor) -> Tensor:
    """Row by row: x[b, :n] flipped, the rest copied."""
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = x[b, :n].flip(0)
    return out


def _reverse_mistakes(x: Tensor, lengths: Tensor) -> list[Mistake]:
    real = torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (B, T)
    real = real.view(*real.shape, *([1] * (x.dim() - 2)))  # (B, T) -> (B, T, 1, ...)
    return [
        ("the whole padded row was flipped, so the padding moved to the front", x.flip(1)),
        ("positions past each length were overwritten: padding must stay as it is", _reverse_oracle(x, lengths) * real),
        ("nothing was reversed", x),
    ]


@EXERCISE.task("reverse_padded", points=3)
def reverse_padded_task(t: Task) -> None:
    x = randn(4, 6, 3, seed=47)  # (B, T, D)
    lengths = torch.tensor([6, 3, 1, 4])  # one unpadded row, one of length 1
    ids = torch.arange(4 * 5).view(4, 5) + 10  # (B, T) integer ids
    ids_lengths = torch.tensor([2, 5, 4, 3])
    deep = randn(3, 5, 2, 2, seed=48)  # (B, T, 2, 2)
    deep_lengths = torch.tensor([3, 5, 1])
    on = "x (4, 6, 3) float64, lengths [6, 3, 1, 4]"
    t.query("x", x, lengths, keep_inputs=True)
    t.query("ids", ids, ids_lengths)
    t.query("deep", deep, deep_lengths)
    real = torch.arange(6)[None, :] < lengths[:, None]  # (B, T): True on real tokens
    expected = _reverse_oracle(x, lengths)
    t.error_hint(
        r"out of bounds|out of range", "an index falls past the end of a row: check the index of the last real token"
    )

    t.shape("returns a tensor of x's shape and dtype", "x", tuple(x.shape), x.dtype, on=on)

    def judged_on(got: object, where: Tensor) -> str | None:
        if type(got) is not Tensor or got.shape != x.shape:
            return compare(got, expected)  # the shape property names the problem; no values to judge
        mistakes = [(hint, wrong[where]) for hint, wrong in _reverse_mistakes(x, lengths)]
        return compare(got[where], expected[where], mistakes)

    t.property("reverses each sequence x[b, :lengths[b]] within its own length", on=on)(
        lambda a: judged_on(a["x"], real)
    )
    t.property("leaves the padding, positions >= lengths[b], as it is", on=on)(lambda a: judged_on(a["x"], ~real))
    t.property("works for any trailing axes: (B, T) integer ids and (B, T, 2, 2)",
               on="ids (4, 5) int64 with lengths [2, 5, 4, 3]; x (3, 5, 2, 2) with lengths [3, 5, 1]")(
        lambda a: first((f"on {query} {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}",
                         compare(a[query], _reverse_oracle(value, n), lambda v=value, n=n: _reverse_mistakes(v, n)))
                        for query, value, n in (("ids", ids, ids_lengths), ("deep", deep, deep_lengths))))  # fmt: skip

    @t.property("returns a new tensor and leaves x and lengths unchanged", on=on, gated=True)
    def inputs_unchanged(a: Answers) -> str | None:
        x_after, lengths_after = a.inputs_after("x")
        if compare(x_after, x) is not None:
            return "your function modified x in place: build the result in a new tensor"
        if compare(lengths_after, lengths) is not None:
            return "your function modified lengths in place"
        return None


check_reverse_padded = EXERCISE.check("reverse_padded")

# ------------------------------------------------------------------------------------------------ scalar_mix


def _mix(layers: Tensor, s: Tensor, gamma: float) -> Tensor:
    """gamma * sum_j s_j layers[j]: (L, B, T, D) -> (B, T, D)."""
    return gamma * (s.view(-1, 1, 1, 1) * layers).sum(dim=0)  # (L,) -> (L, 1, 1, 1) broadcasts over (B, T, D)


def _mix_mistakes(layers: Tensor, w: Tensor, gamma: float) -> list[Mistake]:
    L = layers.shape[0]
    return [
        ("the weights are used as given: they are not normalised by a softmax", _mix(layers, w, gamma)),
        ("the weights are divided by their sum, which is not a softmax", _mix(layers, w / w.sum(), gamma)),
        ("the layers are averaged with equal weights: the weights have no effect",
         _mix(layers, torch.full((L,), 1 / L, dtype=w.dtype), gamma)),
    ]  # fmt: skip


@EXERCISE.task("scalar_mix", points=3)
def scalar_mix_task(t: Task) -> None:
    L = 3
    layers = randn(L, 2, 4, 5, seed=49)  # (L, B, T, D)
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # unnormalised, one negative
    on = "layers (3, 2, 4, 5) float64, weights [0.5, -1.0, 2.0]"
    t.query("gamma1", layers, w, 1.0, keep_inputs=True)
    t.query("gamma2.5", layers, w, 2.5)
    t.query("tensor_gamma", layers, w, torch.tensor(0.5, dtype=torch.float64))
    s = torch.softmax(w, dim=0)

    hints = {(L, 2, 4, 5): "the weighted layers were not summed over the layer axis"}
    t.shape("returns a (B, T, D) tensor of the layers' dtype", "gamma1", (2, 4, 5), torch.float64, hints,
            on=f"{on}, gamma 1.0")  # fmt: skip
    t.equals("mixes the layers with weights softmax(weights)", "gamma1", _mix(layers, s, 1.0),
             lambda: _mix_mistakes(layers, w, 1.0), on=f"{on}, gamma 1.0")  # fmt: skip

    @t.property("gamma scales the whole mix", on=f"{on}, gamma 1.0, 2.5 and a 0-d tensor 0.5")
    def gamma_scales(a: Answers) -> str | None:
        one = a["gamma1"]
        if type(one) is not Tensor or not one.is_floating_point():
            return "no usable output for gamma 1.0 to compare with"
        return first(
            (f"with gamma {gamma}", compare(a[query], gamma * one, [
                ("gamma has no effect on the output", one),
                ("gamma scales the weights before the softmax, not the mix", _mix(layers, (gamma * w).softmax(0), 1.0)),
            ])) for query, gamma in (("gamma2.5", 2.5), ("tensor_gamma", 0.5))
        )  # fmt: skip

    t.unchanged("gamma1", {"layers": layers, "weights": w}, on=on)


check_scalar_mix = EXERCISE.check("scalar_mix")
