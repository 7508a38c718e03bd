"""The explicit LSTM equals PyTorch's: cell vs nn.LSTMCell, explicit loop vs fused nn.LSTM, with padding."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from bertcourse.lstm import LSTM, LSTMCell, lstm_cell, lstm_group, reverse_padded

B, T, I, H, P = 3, 7, 5, 6, 4

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_cell_equals_torch_lstm_cell_with_copied_weights() -> None:
    reference = nn.LSTMCell(I, H).double()
    cell = LSTMCell(I, H).double()
    cell.load_state_dict(reference.state_dict())  # same names and layouts: copies across strictly
    x = torch.randn(B, I, dtype=torch.double)
    state = (torch.randn(B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double))  # non-zero states
    assert_close(cell(x, state), reference(x, state))
    assert_close(cell(x), reference(x))  # zero initial state by default


def test_cell_gradients_equal_torch() -> None:
    reference = nn.LSTMCell(I, H).double()
    cell = LSTMCell(I, H).double()
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(B, I, dtype=torch.double, requires_grad=True)
    state = (torch.randn(B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double))
    grads = []
    for module in (cell, reference):
        h, c = module(x, state)
        (h.square().sum() + c.sum()).backward()
        grads.append([x.grad.clone(), *(p.grad for p in module.parameters())])
        x.grad = None
    for ours, theirs in zip(*grads, strict=True):
        assert_close(ours, theirs)


def test_cell_gate_equations_by_hand() -> None:
    """lstm_cell is the textbook equations: check one step against a per-gate computation."""
    cell = LSTMCell(I, H).double()
    x = torch.randn(B, I, dtype=torch.double)
    h, c = torch.randn(B, H, dtype=torch.double), torch.randn(B, H, dtype=torch.double)
    W_i, W_h = cell.weight_ih.view(4, H, I), cell.weight_hh.view(4, H, H)  # (4H, ·) -> (4, H, ·): gates i, f, g, o
    b = (cell.bias_ih + cell.bias_hh).view(4, H)  # (4H,) -> (4, H)
    pre = [x @ W_i[k].T + h @ W_h[k].T + b[k] for k in range(4)]
    i, f, g, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
    c_next = f * c + i * g
    assert_close(
        lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), (o * c_next.tanh(), c_next)
    )


@pytest.mark.parametrize("proj_size", [0, P])
def test_fused_equals_torch_lstm(proj_size: int) -> None:
    layer = LSTM(I, H, proj_size=proj_size).double()
    reference = nn.LSTM(I, H, batch_first=True, proj_size=proj_size).double()
    layer.rnn.load_state_dict(reference.state_dict())
    x = torch.randn(B, T, I, dtype=torch.double)
    out, (h, c) = layer(x)
    ref_out, (ref_h, ref_c) = reference(x)
    assert_close(out, ref_out)
    assert_close((h, c), (ref_h[0], ref_c[0]))


@pytest.mark.parametrize("proj_size", [0, P])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_explicit_equals_fused_outputs_states_and_gradients(proj_size: int, with_lengths: bool) -> None:
    layer = LSTM(I, H, proj_size=proj_size).double()
    out_size = proj_size or H
    x = torch.randn(B, T, I, dtype=torch.double, requires_grad=True)
    state = (torch.randn(B, out_size, dtype=torch.double), torch.randn(B, H, dtype=torch.double))
    lengths = torch.tensor([T, 3, 1]) if with_lengths else None
    results = []
    for fused in (True, False):
        layer.fused = fused
        out, (h, c) = layer(x, state, lengths=lengths)
        (out.sin().sum() + h.square().sum() + c.sum()).backward()
        results.append([out, h, c, x.grad.clone(), *(p.grad.clone() for p in layer.parameters())])
        x.grad = None
        layer.zero_grad()
    for fused_value, explicit_value in zip(*results, strict=True):
        assert_close(explicit_value, fused_value)


@pytest.mark.parametrize("fused", [True, False])
def test_padding_never_updates_the_state(fused: bool) -> None:
    """A padded sequence gives the outputs and final state of the same sequence run alone, zeros at padding."""
    layer = LSTM(I, H, proj_size=P, fused=fused).double().eval()
    x = torch.randn(B, T, I, dtype=torch.double)
    lengths = torch.tensor([T, 4, 2])
    out, (h, c) = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, (h_alone, c_alone) = layer(x[b : b + 1, :n])
        assert_close(out[b, :n], alone[0])
        assert_close((h[b], c[b]), (h_alone[0], c_alone[0]))
        assert torch.all(out[b, n:] == 0)
    x_garbage = x.clone()
    x_garbage[1, 4:] = 1e3  # whatever sits in the padding changes nothing
    assert_close(layer(x_garbage, lengths=lengths), (out, (h, c)))


def test_explicit_equals_fused_in_float32() -> None:
    layer = LSTM(I, H, proj_size=P)
    x = torch.randn(B, T, I)
    fused = layer(x)
    layer.fused = False
    assert_close(layer(x), fused)


@pytest.mark.parametrize("proj_size", [0, P])
def test_lstm_group_equals_each_layer_alone_outputs_and_gradients(proj_size: int) -> None:
    """The batched, hand-differentiated group is G independent torch.nn.LSTM layers: outputs and every gradient."""
    layers = [LSTM(I, H, proj_size=proj_size).double() for _ in range(3)]
    x = torch.randn(3, B, T, I, dtype=torch.double, requires_grad=True)
    weights = torch.randn(3, B, T, proj_size or H, dtype=torch.double)  # a loss that weighs every output
    params = [x, *(p for layer in layers for p in layer.parameters())]
    group = lstm_group(x, layers)
    alone = torch.stack([layer(x[g])[0] for g, layer in enumerate(layers)])  # nn.LSTM, one layer at a time
    assert_close(group, alone)
    got = torch.autograd.grad((group * weights).sum(), params)
    want = torch.autograd.grad((alone * weights).sum(), params)
    for a, b in zip(got, want, strict=True):
        assert_close(a, b)


def test_lstm_group_in_float32_and_its_checks() -> None:
    layers = [LSTM(I, H, proj_size=P) for _ in range(2)]
    x = torch.randn(2, B, T, I)
    assert_close(lstm_group(x, layers), torch.stack([m(x[g])[0] for g, m in enumerate(layers)]), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="x must be"):
        lstm_group(x[:1], layers)
    with pytest.raises(ValueError, match="layers must be"):
        lstm_group(x, [layers[0], LSTM(I, H + 1, proj_size=P)])


def test_reverse_padded_reverses_within_length_and_is_an_involution() -> None:
    x = torch.arange(2 * 5).view(2, 5, 1)  # (2, 5) -> (2, 5, 1)
    lengths = torch.tensor([5, 3])
    y = reverse_padded(x, lengths)
    assert y[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_padded(y, lengths), x)
    assert torch.equal(reverse_padded(x), x.flip(1))


def test_bad_inputs_raise_value_error_naming_the_argument() -> None:
    layer = LSTM(I, H, proj_size=P)
    x = torch.randn(B, T, I)
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.randn(B, T, I + 1))
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.randn(B, 0, I))
    with pytest.raises(ValueError, match="state"):
        layer(x, (torch.zeros(B, H), torch.zeros(B, H)))  # h must be (B, P) with a projection
    with pytest.raises(ValueError, match="lengths must lie in"):
        layer(x, lengths=torch.tensor([T + 1, 1, 1]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        layer(x, lengths=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="lengths must be"):
        layer(x, lengths=torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(I, H, proj_size=H)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMCell(I, 0)
    with pytest.raises(ValueError, match="x must be"):
        LSTMCell(I, H)(torch.randn(B, I + 1))


@pytest.mark.gpu
def test_cudnn_lstm_equals_explicit_loop_and_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN RNNs default to TF32 on Ampere+
    layer = LSTM(I, H, proj_size=P)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([T, 4, 2])
    cpu = layer(x, lengths=lengths)
    layer = layer.cuda()
    fused = layer(x.cuda(), lengths=lengths.cuda())
    layer.fused = False
    explicit = layer(x.cuda(), lengths=lengths.cuda())
    assert_close(explicit, fused, rtol=1e-4, atol=1e-5)
    assert_close(fused, (cpu[0].cuda(), (cpu[1][0].cuda(), cpu[1][1].cuda())), rtol=1e-4, atol=1e-5)
