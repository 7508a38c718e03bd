"""The probes of ``benchmarks/elmo_feature_probe.py`` (chapter 08's diagnosis of frozen ELMo) tell a linear
read-out from a non-linear one: on labels that are a linear function of the features both read them, on an
XOR of two features only the MLP does. So "the MLP reads it, the linear probe does not" means something."""

from __future__ import annotations

import torch

from benchmarks.elmo_feature_probe import probe


def test_linear_probe_reads_a_linear_label_and_only_the_mlp_reads_an_xor() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 8, generator=g)  # (N, 8): the label sits in the first two features
    linear_y = (x[:, 0] + x[:, 1] > 0).long()
    xor_y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    train, test = slice(0, 400), slice(400, None)
    assert probe(x[train], linear_y[train], x[test], linear_y[test], hidden=0)["test"] > 0.95
    assert probe(x[train], xor_y[train], x[test], xor_y[test], hidden=0)["test"] < 0.65
    assert probe(x[train], xor_y[train], x[test], xor_y[test], hidden=256)["test"] > 0.9
