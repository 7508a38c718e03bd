"""Checks for exercise 08: ``influence_matrix(fn, x)`` and ``interaction(fn, x, x_alt, t)`` on the three models.

The learner's function gets ``fn``, a course model's ``encode`` as a function of the input token
embeddings (built in the kernel from the model the query carries, by :mod:`~bertcourse.grading.model_functions`), and
``x``, the real embeddings (T, D). The oracle is the full autograd Jacobian (T, H, T, D) of the same
function in the grader's own process, reduced to Frobenius norms. Visibility is judged by behaviour:
GPT's matrix must be lower-triangular, BERT's full, ELMo's forward half lower- and its backward half
upper-triangular, with T != D != H (ELMo's full states are 2 d_model wide) and random weights.

``interaction`` gets the same ``fn``, the real embeddings ``x`` and other embeddings ``x_alt`` drawn from
the class seed (row t differs too, so a learner who takes row t from ``x_alt`` is caught), and a position
``t``. Its oracle builds the four mixed inputs with ``torch.where`` on a row index and takes the norm of
the second difference in float64; it is exactly 0 for ELMo and GPT (additive by construction), which a
constant answer would match, so those properties count only with BERT's value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bertcourse.bert import BertConfig, BertModel
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.experiments.influence import embedding_function
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.grading.codec import ModelFunction
from bertcourse.grading.framework import Answers, Exercise, Mistake, Task, compare, randn
from bertcourse.grading.kit import as_float64
from bertcourse.grading.model_functions import INPUT_IDS, PARTS

__all__ = ["EXERCISE", "check_influence_matrix", "check_interaction"]

EXERCISE = Exercise("08_head_to_head.ipynb")
VOCAB, T = 40, 5


def _models() -> dict[str, nn.Module]:
    """Small course models with seeded random weights, in eval mode (no dropout)."""
    torch.manual_seed(80)
    sizes = {"n_layers": 2, "n_heads": 2, "d_ff": 24, "max_len": 16, "dropout": 0.0, "attention_dropout": 0.0}
    return {
        "gpt": GPT(GPTConfig(VOCAB, d_model=12, **sizes)).eval(),
        "bert": BertModel(BertConfig(VOCAB, d_model=12, **sizes), add_pooling_layer=False).eval(),
        "elmo": ELMo(ELMoConfig(VOCAB, d_model=6, d_hidden=12, n_layers=2, dropout=0.0)).eval(),
    }


CASES = {  # query name -> (model, part of its states, what a learner reads in the report)
    "bert": ("bert", "encode", "BERT (2 layers, T=5, D=H=12)"),
    "gpt": ("gpt", "encode", "GPT (2 layers, T=5, D=H=12)"),
    "elmo": ("elmo", "encode", "ELMo, both directions (T=5, D=6, H=12)"),
    "elmo_forward": ("elmo", "elmo_forward", "ELMo's forward half (T=5, D=6, H=6)"),
    "elmo_backward": ("elmo", "elmo_backward", "ELMo's backward half (T=5, D=6, H=6)"),
}


def _jacobian(model: nn.Module, part: str) -> tuple[Tensor, Tensor]:
    """(x (T, D), the Jacobian (T, H, T, D) of fn at x as float64), computed in the grader.

    All rows in one backward pass: fn takes a batch (N, T, D), and copy n = (i, h) of x back-propagates
    output entry h of position i only.
    """
    fn, x = embedding_function(model, INPUT_IDS, PARTS[part])
    with torch.no_grad():
        H = fn(x).shape[-1]
    n = torch.arange(T * H)
    copies = x.expand(T * H, *x.shape).clone().requires_grad_(True)  # (N, T, D), N = T * H
    picked = fn(copies)[n, n // H, n % H].sum()  # each copy's own output entry
    (grad,) = torch.autograd.grad(picked, copies)  # (N, T, D): row n of the Jacobian
    return x, grad.view(T, H, *x.shape).double()  # (T * H, T, D) -> (T, H, T, D)


def _mistakes(J: Tensor) -> list[Mistake]:
    """What the usual mistakes return, from the true Jacobian J (T, H, T, D)."""
    frobenius = J.pow(2).sum(dim=(1, 3)).sqrt()  # (T, T)
    return [
        ("rows and columns are swapped: [i, j] must be the influence of input j on output i, not the reverse",
         frobenius.T),
        ("the squared Frobenius norm: the square root is missing", frobenius.pow(2)),
        ("the sum of the Jacobian's absolute values (an L1 norm), not the Frobenius norm", J.abs().sum(dim=(1, 3))),
        ("the gradient of the sum of fn(x)[i]'s entries is one vector-Jacobian product (all of H mixed before "
         "the norm); the Frobenius norm needs every entry of the block d fn(x)[i] / d x[j]",
         J.sum(dim=1).pow(2).sum(dim=-1).sqrt()),
        ("the gradient of the sum of all outputs gives every row i the same values: output i must be "
         "differentiated on its own", J.sum(dim=(0, 1)).pow(2).sum(dim=-1).sqrt().expand(J.shape[0], -1)),
        ("the norms of the H rows of each block are summed, not combined as one Frobenius norm",
         J.pow(2).sum(dim=3).sqrt().sum(dim=1)),
    ]  # fmt: skip


@EXERCISE.task("influence_matrix", points=5)
def influence_matrix_task(t: Task) -> None:
    models = _models()
    inputs = {}
    for query, (model, part, _) in CASES.items():
        x, J = _jacobian(models[model], part)
        inputs[query] = (x, J)
        t.query(query, ModelFunction("model_functions", part, models[model]), x)

    def value(query: str) -> Callable[[Answers], str | None]:
        J = inputs[query][1]
        expected = J.pow(2).sum(dim=(1, 3)).sqrt()
        return lambda a: compare(as_float64(a[query]), expected, lambda: _mistakes(J), rtol=1e-4, atol=1e-6)

    @t.property("returns a (T, T) floating-point tensor", on=CASES["bert"][2], gated=True)
    def shape_dtype(a: Answers) -> str | None:
        got = a["bert"]
        if type(got) is not Tensor:
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.shape == (T, 12, T, 12):
            return "that is the whole Jacobian (T, H, T, D); each (H, D) block must become one number"
        if got.shape != (T, T):
            return f"expected shape {(T, T)}, got {tuple(got.shape)}"
        return None if got.is_floating_point() else f"expected a floating-point tensor, got dtype {got.dtype}"

    t.property("[i, j] = Frobenius norm of d fn(x)[i] / d x[j] (equals the autograd Jacobian's)",
               on=CASES["bert"][2])(value("bert"))  # fmt: skip
    t.property("the same on inputs of width D = 6 and outputs of width H = 12", on=CASES["elmo"][2])(value("elmo"))

    @t.property("GPT: lower-triangular, no influence from later tokens", on=CASES["gpt"][2])
    def gpt(a: Answers) -> str | None:
        got = as_float64(a["gpt"])
        upper = type(got) is Tensor and got.shape == (T, T) and got.is_floating_point()
        if upper and torch.triu(got, diagonal=1).abs().max() > 1e-6 >= torch.tril(got, diagonal=-1).abs().max():
            return "GPT's matrix is upper-triangular: output i must be a row, input j a column"
        return value("gpt")(a)

    @t.property("ELMo: the forward half sees the left, the backward half the right",
                on=f"{CASES['elmo_forward'][2]}; {CASES['elmo_backward'][2]}")  # fmt: skip
    def elmo_directions(a: Answers) -> str | None:
        for query, side in (("elmo_forward", "forward"), ("elmo_backward", "backward")):
            problem = value(query)(a)
            if problem:
                return f"{side} half: {problem}"
        return None


check_influence_matrix = EXERCISE.check("influence_matrix")


def _terms(model: nn.Module, part: str, x: Tensor, x_alt: Tensor, t: int, left_end: int = 0) -> dict[str, Tensor]:
    """The grader's four representations at t, float64: key "LR" = fn(left from L, right from R), and so on.

    L, R: rows of ``x`` before / after t; L', R' (written "l", "r"): rows of ``x_alt``; row t: ``x``'s.
    ``left_end=1`` computes the off-by-one slip instead, whose left context takes row t too.
    """
    fn = embedding_function(model, INPUT_IDS, PARTS[part])[0]
    row = torch.arange(x.shape[0])[:, None]  # (T, 1)
    with torch.no_grad():
        return {
            f"{a}{b}": fn(torch.where(row < t + left_end, left, torch.where(row > t, right, x)))[t].double()
            for a, left in (("l", x_alt), ("L", x))
            for b, right in (("r", x_alt), ("R", x))
        }


def _interaction_mistakes(h: dict[str, Tensor], wrong_t: Tensor, off: dict[str, Tensor]) -> list[Mistake]:
    """What the usual mistakes of ``interaction`` return, from the true representations ``h`` (and ``off``,
    those of the off-by-one slip)."""
    second = h["lr"] - h["lR"] - h["Lr"] + h["LR"]
    return [
        ("the last term's sign: h(L', R') - h(L', R) - h(L, R') + h(L, R) adds h(L, R) back",
         (h["lr"] - h["lR"] - h["Lr"] - h["LR"]).norm()),
        ("the squared norm: take the square root (torch.linalg.norm or .norm())", second.pow(2).sum()),
        ("the sum of absolute values (an L1 norm), not the Euclidean norm", second.abs().sum()),
        ("row t must stay x's in all four inputs; it was taken from x_alt in some of them", wrong_t),
        ("the left context is the rows before t (x[:t]): with x_alt[:t + 1] row t came from x_alt",
         (off["lr"] - off["lR"] - off["Lr"] + off["LR"]).norm()),
    ]  # fmt: skip


INTERACTION_CASES = {  # query -> (model, part, position t, what a learner reads in the report)
    "bert": ("bert", "encode", 2, "BERT (T=5, D=H=12), t=2"),
    "bert_t3": ("bert", "encode", 3, "BERT, t=3"),
    "bert_t0": ("bert", "encode", 0, "BERT, t=0 (no left context)"),
    "gpt": ("gpt", "encode", 2, "GPT, t=2"),
    "elmo": ("elmo", "encode", 2, "ELMo, both directions (D=6, H=12), t=2"),
}


@EXERCISE.task("interaction", points=3)
def interaction_task(t: Task) -> None:
    models = _models()
    expected, mistakes = {}, {}
    for n, (query, (model, part, position, _)) in enumerate(INTERACTION_CASES.items()):
        x = embedding_function(models[model], INPUT_IDS, PARTS[part])[1]
        x_alt = randn(*x.shape, seed=81 + n, dtype=x.dtype)  # other contexts, and another row t
        h = _terms(models[model], part, x, x_alt, position)
        expected[query] = (h["lr"] - h["lR"] - h["Lr"] + h["LR"]).norm()
        with torch.no_grad():  # the usual slip: fn(x_alt) for h(L', R'), whose row t is x_alt's
            h_alt = embedding_function(models[model], INPUT_IDS, PARTS[part])[0](x_alt)[position].double()
        off = _terms(models[model], part, x, x_alt, position, left_end=1)
        mistakes[query] = _interaction_mistakes(h, (h_alt - h["lR"] - h["Lr"] + h["LR"]).norm(), off)
        t.query(query, ModelFunction("model_functions", part, models[model]), x, x_alt, position)

    def value(query: str) -> Callable[[Answers], str | None]:
        def test(a: Answers) -> str | None:
            got = a[query]
            if type(got) is not Tensor or got.dim() != 0 or not got.is_floating_point():
                shape = tuple(got.shape) if type(got) is Tensor else type(got).__name__
                return f"expected a 0-dim floating-point tensor (a norm), got {shape}"
            return compare(as_float64(got), expected[query], mistakes[query], rtol=1e-4, atol=1e-6)

        return test

    @t.property("returns a 0-dim floating-point tensor", on=INTERACTION_CASES["bert"][3], gated=True)
    def shape(a: Answers) -> str | None:
        got = a["bert"]
        if type(got) is not Tensor:
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.dim() == 1:
            return f"expected one number, got a vector of {got.numel()}: take the norm of the second difference"
        return None if got.dim() == 0 and got.is_floating_point() else f"expected a 0-dim float tensor, got {got!r:.60}"

    t.property("equals the norm of the second difference", on=INTERACTION_CASES["bert"][3])(value("bert"))
    t.property("the same at another position", on=INTERACTION_CASES["bert_t3"][3])(value("bert_t3"))
    t.property("is 0 where there is no left context", on=INTERACTION_CASES["bert_t0"][3], gated=True)(value("bert_t0"))

    @t.property("is 0 for GPT and ELMo, whose representations add a left and a right part",
                on=f"{INTERACTION_CASES['gpt'][3]}; {INTERACTION_CASES['elmo'][3]}", gated=True)  # fmt: skip
    def additive(a: Answers) -> str | None:
        for query in ("gpt", "elmo"):
            problem = value(query)(a)
            if problem:
                return f"{query.upper() if query == 'gpt' else 'ELMo'}: {problem}"
        return None


check_interaction = EXERCISE.check("interaction")
