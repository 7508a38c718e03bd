"""Chapter 09's fair comparison: the compact vocabulary computes exactly what the full model computes."""

from __future__ import annotations

import pytest
import torch

from bertcourse import BertConfig, BertModel
from bertcourse.chapters.minilm_gain import compact_vocabulary


def test_compact_vocabulary_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    full = BertModel(BertConfig(vocab_size=60, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=12)).eval()
    used = [0, 5, 7, 11, 40, 59]
    compact, remap = compact_vocabulary(full, used)
    assert compact.config.vocab_size == len(used) and compact.config.pad_token_id == 0
    ids = torch.tensor([[5, 7, 11, 40, 0, 0], [59, 40, 7, 5, 11, 7]])
    mask = (ids != 0).long()
    torch.testing.assert_close(compact.eval()(remap[ids], mask).last_hidden_state, full(ids, mask).last_hidden_state)
    assert remap[6] == -1  # an id not kept
    with pytest.raises(ValueError, match="vocab_size"):
        compact_vocabulary(full, [0, 60])
