"""Checks for exercise 08 (influence): ``influence_matrix(fn, x)`` on the three course models.

The learner's function gets ``fn``, a course model's ``encode`` as a function of the input token
embeddings (built in the kernel from the model the query carries, by :mod:`~bertcourse.grading.model_functions`), and
``x``, the real embeddings (T, D). The oracle is the full autograd Jacobian (T, H, T, D) of the same
function in the grader's own process, reduced to Frobenius norms. Visibility is judged by behaviour:
GPT's matrix must be lower-triangular, BERT's full, ELMo's forward half lower- and its backward half
upper-triangular, with T != D != H (ELMo's full states are 2 d_model wide) and random weights.
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
from bertcourse.grading.framework import Answers, Exercise, Mistake, Task, compare
from bertcourse.grading.kit import as_float64
from bertcourse.grading.model_functions import INPUT_IDS, PARTS

__all__ = ["EXERCISE", "check_influence_matrix"]

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
