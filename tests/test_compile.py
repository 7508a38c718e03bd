"""``torch.compile`` (the engine's ``compile=True``, ``pretrain --compile``): GPT and BERT trace as one graph.

The input checks that read tensor values (ids in range, a 0/1 mask) and the two value-dependent shortcuts
(``padding_or_none``'s "no padding, no mask" and attention's "no empty rows") would each split the graph;
under tracing they are skipped (``validation.tracing``), so ``fullgraph=True`` compiles. The compiled model
must give eager's numbers, with and without padding, and eager calls must still refuse bad values.
"""

from __future__ import annotations

import pytest
import torch

from bertcourse.attention import padding_or_none
from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.gpt import GPT, GPTConfig

V, T = 40, 12


def _batch(padded: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(V, (3, T))
    mask = torch.ones(3, T, dtype=torch.long)
    if padded:
        mask[1, 7:] = 0
        mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "gpt": GPT(GPTConfig(V, 32, 2, 2, 64, max_len=T, dropout=0.0)).eval(),
        "bert": BertForPreTraining(BertConfig(V, 32, 2, 2, 64, max_len=T, dropout=0.0)).eval(),
    }


@pytest.mark.parametrize("name", ["gpt", "bert"])
@pytest.mark.parametrize("padded", [False, True])
def test_a_compiled_model_is_one_graph_with_eagers_numbers(name: str, padded: bool) -> None:
    torch._dynamo.reset()
    model = _models()[name]
    batch = _batch(padded)
    labels = batch["input_ids"].clone()
    with torch.no_grad():
        eager = model(**batch, labels=labels)
        # backend="eager": dynamo's tracing alone (what splits a graph), without inductor's minutes of code generation.
        compiled = torch.compile(model, backend="eager", fullgraph=True)(**batch, labels=labels)
    logits = "logits" if name == "gpt" else "prediction_logits"
    torch.testing.assert_close(getattr(compiled, logits), getattr(eager, logits), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-5)


def test_eager_calls_still_check_values_and_drop_an_all_ones_mask() -> None:
    model = _models()["bert"]
    batch = _batch(padded=False)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, vocab_size=40\)"):
        model(input_ids=batch["input_ids"] + V)
    with pytest.raises(ValueError, match="attention_mask must hold only 0"):
        model(input_ids=batch["input_ids"], attention_mask=2 * batch["attention_mask"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 40\) or be -100"):
        _models()["gpt"](input_ids=batch["input_ids"], labels=batch["input_ids"] + V)
    assert padding_or_none(batch["attention_mask"]) is None
