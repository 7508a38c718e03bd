"""The LSTM twice: an explicit cell that shows its gates, and the fused ``torch.nn.LSTM`` fast path.

Hochreiter & Schmidhuber (1997), in the form ``torch.nn.LSTMCell`` computes (gate order i, f, g, o):

    i  = σ(W_ii x + b_ii + W_hi h + b_hi)        input gate
    f  = σ(W_if x + b_if + W_hf h + b_hf)        forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)     candidate cell
    o  = σ(W_io x + b_io + W_ho h + b_ho)        output gate
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')                            (with a projection: h' = W_hr (o ⊙ tanh(c')))

The four W_i* are stacked row-wise into ``weight_ih`` (4H, I), the W_h* into ``weight_hh`` (4H, H), exactly
as PyTorch stores them, so weights copy across with ``load_state_dict``. The projection (``proj_size`` P)
is the "LSTMP" of Sak et al. (2014) that ELMo uses: the cell has H units, the state fed back and
returned has P.

:class:`LSTM` keeps ONE set of weights, those of an inner ``torch.nn.LSTM``. ``fused=True`` runs that
module (cuDNN on a GPU); ``fused=False`` loops :func:`lstm_cell` over time on the same tensors. Tests
prove the two equal, with and without padding. On Ampere and newer GPUs cuDNN computes float32 RNNs in
TF32 by default (``torch.backends.cudnn.allow_tf32``), so there the two agree to about 1e-3 only.

:func:`lstm_group` runs several layers of one size side by side (ELMo's two directions) on a CPU, where
small LSTMs spend their time on per-step overhead: one loop for the group, gradients written out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bertcourse.validation import check_bool, check_int

__all__ = ["LSTM", "LSTMCell", "lstm_cell", "lstm_group", "reverse_padded"]

# PyTorch notes, once per process, that its oneDNN kernels lack projections and it uses its own; nothing to act on.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

LSTMState = tuple[Tensor, Tensor]
"""(h, c): hidden state (B, P or H) and cell state (B, H)."""


def lstm_cell(
    x: Tensor,
    state: LSTMState,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
) -> LSTMState:
    """One LSTM time step with the gates written out.

    Args:
        x: (B, I) input at this step.
        state: (h, c), each (B, H_h) and (B, H): the previous hidden and cell states.
        weight_ih: (4H, I), weight_hh: (4H, H_h), bias_ih and bias_hh: (4H,), gate blocks in order i, f, g, o.

    Returns:
        (o ⊙ tanh(c'), c'), each (B, H). A projected LSTM multiplies the first by W_hr afterwards.
    """
    h, c = state
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # (B, 4H) -> 4 x (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_next = f * c + i * g
    h_next = o * torch.tanh(c_next)
    return h_next, c_next


class LSTMCell(nn.Module):
    """The explicit LSTM cell, parameter for parameter a ``torch.nn.LSTMCell``.

    ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih`` (4H,), ``bias_hh`` (4H,), initialised like
    PyTorch's, U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_int(input_size, "LSTMCell: input_size", minimum=1)
        check_int(hidden_size, "LSTMCell: hidden_size", minimum=1)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: LSTMState | None = None) -> LSTMState:
        """(B, I) input and optional (h, c), each (B, H) (zeros when omitted) -> the next (h', c')."""
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"LSTMCell: x must be (B, input_size={self.input_size}), got {got}")
        B = x.shape[0]
        if state is None:
            zeros = x.new_zeros(B, self.hidden_size)
            state = (zeros, zeros)
        _check_state(state, B, self.hidden_size, self.hidden_size)
        return lstm_cell(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTM(nn.Module):
    """One unidirectional, batch-first LSTM layer with an optional output projection.

    The weights are those of ``self.rnn``, a ``torch.nn.LSTM`` (keys ``rnn.weight_ih_l0`` (4H, I),
    ``rnn.weight_hh_l0`` (4H, P or H), ``rnn.bias_ih_l0``, ``rnn.bias_hh_l0`` (4H,) and, when
    ``proj_size`` P > 0, ``rnn.weight_hr_l0`` (P, H)). ``fused`` picks how they are applied:
    ``True`` calls ``torch.nn.LSTM`` (one fused kernel per sequence), ``False`` loops :func:`lstm_cell`
    over the T steps in Python, the readable version. Flip ``layer.fused`` at any time: same numbers.
    """

    def __init__(self, input_size: int, hidden_size: int, proj_size: int = 0, fused: bool = True) -> None:
        super().__init__()
        check_int(input_size, "LSTM: input_size", minimum=1)
        check_int(hidden_size, "LSTM: hidden_size", minimum=1)
        if check_int(proj_size, "LSTM: proj_size", minimum=0) >= hidden_size:
            raise ValueError(f"LSTM: proj_size must be an integer in [0, hidden_size={hidden_size}), got {proj_size!r}")
        check_bool(fused, "LSTM: fused")
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.output_size = proj_size or hidden_size
        self.fused = fused
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=True, proj_size=proj_size)

    def forward(
        self, x: Tensor, state: LSTMState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        """Run the layer over a batch of sequences.

        Args:
            x: (B, T, I) inputs.
            state: optional initial (h_0, c_0), each (B, P or H) and (B, H); zeros when omitted.
            lengths: optional (B,) integers in [1, T]: sequence b is ``x[b, :lengths[b]]``, the rest is
                padding. Padded steps never update the state, and their outputs are zero.

        Returns:
            outputs (B, T, P or H) and (h_n, c_n), the states after each sequence's last real step.
        """
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"LSTM: x must be (B, T >= 1, input_size={self.input_size}), got {got}")
        B, T, _ = x.shape
        if state is None:
            state = (x.new_zeros(B, self.output_size), x.new_zeros(B, self.hidden_size))
        _check_state(state, B, self.output_size, self.hidden_size)
        if lengths is not None:
            _check_lengths(lengths, B, T)
        if self.fused:
            return self._forward_fused(x, state, lengths)
        return self._forward_explicit(x, state, lengths)

    def _forward_fused(self, x: Tensor, state: LSTMState, lengths: Tensor | None) -> tuple[Tensor, LSTMState]:
        """``torch.nn.LSTM``; with lengths, a packed sequence so padded steps are skipped."""
        hx = (state[0].unsqueeze(0), state[1].unsqueeze(0))  # (B, ·) -> (1, B, ·): nn.LSTM's layer axis
        if lengths is None:
            outputs, (h_n, c_n) = self.rnn(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, (h_n, c_n) = self.rnn(packed, hx)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        return outputs, (h_n.squeeze(0), c_n.squeeze(0))  # (1, B, ·) -> (B, ·)

    def _forward_explicit(self, x: Tensor, state: LSTMState, lengths: Tensor | None) -> tuple[Tensor, LSTMState]:
        """The same layer as a Python loop over :func:`lstm_cell`, reading ``self.rnn``'s tensors."""
        rnn = self.rnn
        h, c = state
        outputs = []
        for t in range(x.shape[1]):
            h_next, c_next = lstm_cell(
                x[:, t], (h, c), rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
            )
            if self.proj_size:
                h_next = h_next @ rnn.weight_hr_l0.T  # (B, H) -> (B, P)
            if lengths is None:
                h, c = h_next, c_next
                outputs.append(h)
            else:
                real = (t < lengths).to(x.device).unsqueeze(1)  # (B, 1): is step t inside sequence b?
                h, c = torch.where(real, h_next, h), torch.where(real, c_next, c)
                outputs.append(torch.where(real, h_next, torch.zeros_like(h_next)))
        return torch.stack(outputs, dim=1), (h, c)  # T x (B, P or H) -> (B, T, P or H)


def lstm_group(x: Tensor, layers: Sequence[LSTM]) -> Tensor:
    """Run G LSTM layers of one size side by side, layer g on ``x[g]``, from zero states.

    Shapes: x (G, B, T, I) -> outputs (G, B, T, P or H), as ``torch.stack([layers[g](x[g])[0] for g ...])``.

    ELMo's forward and backward LMs are two such layers at every depth. Equal to calling each layer on its
    own input (tested), but faster on a CPU, where a small LSTM spends much of its time on per-step
    overhead and on allocating buffers: the G layers share each step's operations (batched matrix
    products over the group), the forward pass records no autograd graph, and the backward pass is
    written out (back-propagation through time), reuses its buffers, and makes the weight gradients G
    matrix products over all steps at once instead of one per step (``benchmarks/throughput.py``
    measures it). On a GPU, ``torch.nn.LSTM`` (cuDNN) is the fast path.
    """
    if not layers or any(
        (m.input_size, m.hidden_size, m.proj_size) != (layers[0].input_size, layers[0].hidden_size, layers[0].proj_size)
        for m in layers
    ):
        raise ValueError("lstm_group: layers must be a non-empty sequence of LSTMs of one size")
    G, first = len(layers), layers[0]
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != G or x.shape[3] != first.input_size:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"lstm_group: x must be (G={G}, B, T, input_size={first.input_size}), got {got}")
    rnns = [m.rnn for m in layers]
    H = first.hidden_size

    def ifog(w: Tensor) -> Tensor:  # gate blocks i, f, g, o -> i, f, o, g: the three sigmoid gates side by side
        return torch.cat([w[:, : 2 * H], w[:, 3 * H :], w[:, 2 * H : 3 * H]], dim=1)

    weight_ih = ifog(torch.stack([r.weight_ih_l0 for r in rnns]))  # G x (4H, I) -> (G, 4H, I)
    weight_hh = ifog(torch.stack([r.weight_hh_l0 for r in rnns]))  # (G, 4H, P or H)
    bias = ifog(torch.stack([r.bias_ih_l0 + r.bias_hh_l0 for r in rnns]))  # (G, 4H): the two biases only add
    weight_hr = torch.stack([r.weight_hr_l0 for r in rnns]) if first.proj_size else None  # (G, P, H)
    return _GroupBPTT.apply(x, weight_ih, weight_hh, bias, weight_hr)


class _GroupBPTT(torch.autograd.Function):
    """:func:`lstm_group`'s arithmetic: a forward loop without autograd, and its gradients written out.

    Per step t and group g (gate rows in the order i, f, o, g; m = o ⊙ tanh(c), h = W_hr m or m):
    forward  a = act(pre_t + W_hh h_{t-1}),  c_t = f ⊙ c_{t-1} + i ⊙ g,  m_t = o ⊙ tanh(c_t);
    backward dm = W_hr^T dh_t,  dc_t = f_{t+1} ⊙ dc_{t+1} + dm ⊙ o ⊙ (1 - tanh²c_t),
             dpre_t = [dc ⊙ g ⊙ i(1-i), dc ⊙ c_{t-1} ⊙ f(1-f), dm ⊙ tanh(c_t) ⊙ o(1-o), dc ⊙ i ⊙ (1-g²)],
             dh_{t-1} += W_hh^T dpre_t;  then dW_ih = Σ_t dpre_t^T x_t, dW_hh = Σ_t dpre_t^T h_{t-1},
             dW_hr = Σ_t dh_t^T m_t, db = Σ_t dpre_t, dx_t = W_ih^T dpre_t.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor, weight_hr: Tensor | None
    ) -> Tensor:
        # Every buffer is (G, T, B, ...): step t is [:, t], and (G, T B, ...) views feed the products over all steps.
        G, B, T, I = x.shape
        H, P = weight_hh.shape[1] // 4, weight_hh.shape[2]
        x_steps = x.transpose(1, 2).reshape(G, T * B, I)  # (G, B, T, I) -> (G, T B, I)
        gates = torch.baddbmm(bias.unsqueeze(1), x_steps, weight_ih.transpose(1, 2))  # W_ih x_t + b, (G, T B, 4H)
        gates = gates.view(G, T, B, 4 * H)  # step t's pre-activations, activated in place below
        cells = x.new_zeros(G, T + 1, B, H)  # c_0 = 0, then c_1 .. c_T
        tanh_c = x.new_empty(G, T, B, H)
        hidden = x.new_zeros(G, T + 1, B, P)  # h_0 = 0, then h_1 .. h_T
        m = x.new_empty(G, T, B, H) if weight_hr is not None else hidden[:, 1:]  # o ⊙ tanh(c) before projection
        w_hh, w_hr = weight_hh.transpose(1, 2), None if weight_hr is None else weight_hr.transpose(1, 2)
        # Per-step views made once (unbind over time), not in every step of the loop.
        a_, sig_, tanh_ = gates.unbind(1), gates[..., : 3 * H].unbind(1), gates[..., 3 * H :].unbind(1)
        i_, f_, o_, g_ = (part.unbind(1) for part in gates.chunk(4, dim=-1))
        c_, tc_, h_, m_ = cells.unbind(1), tanh_c.unbind(1), hidden.unbind(1), m.unbind(1)
        for t in range(T):
            if t:
                a_[t].baddbmm_(h_[t], w_hh)  # (G, B, 4H): step t's pre-activations
            sig_[t].sigmoid_()  # i, f, o
            tanh_[t].tanh_()  # g
            torch.mul(f_[t], c_[t], out=c_[t + 1]).addcmul_(i_[t], g_[t])  # c_t = f c_{t-1} + i g
            torch.mul(o_[t], torch.tanh(c_[t + 1], out=tc_[t]), out=m_[t])  # m_t = o tanh(c_t)
            if w_hr is not None:
                torch.bmm(m_[t], w_hr, out=h_[t + 1])  # (G, B, H) -> (G, B, P)
        ctx.save_for_backward(x_steps, weight_ih, weight_hh, weight_hr, gates, cells, tanh_c, hidden, m)
        return hidden[:, 1:].transpose(1, 2)  # (G, T, B, P) -> (G, B, T, P)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x_steps, weight_ih, weight_hh, weight_hr, gates, cells, tanh_c, hidden, m = ctx.saved_tensors
        G, T, B, H4 = gates.shape
        H, P = H4 // 4, hidden.shape[-1]
        d_out = grad.transpose(1, 2)  # (G, B, T, P) -> (G, T, B, P)
        i, f, o, g = gates.chunk(4, dim=-1)  # each (G, T, B, H)
        # d pre_t / d (dc, dc, dm, dc): what each gate multiplies, times its slope, built in one buffer:
        # σ' = σ - σ² for i, f, o (x σ - x σ σ), tanh' = 1 - tanh² for g (i - i g g).
        coef = torch.cat([g, cells[:, :-1], tanh_c, i], dim=-1)
        coef.mul_(gates).addcmul_(coef, gates, value=-1)
        coef[..., 3 * H :].copy_(g).mul_(g).mul_(i).neg_().add_(i)
        coef_c = tanh_c.square().neg_().add_(1).mul_(o)  # d c_t / d m_t: o (1 - tanh² c_t)
        d_pre = coef  # step t's coefficients become dpre_t in place, once step t has used them
        d_rec = gates.new_zeros(G, T, B, P)  # the recurrent part of dh_t: W_hh^T dpre_{t+1} (0 at the last step)
        if weight_hr is not None:  # the output's part of dm_t = W_hr^T dh_t, for all steps at once
            dm_out = torch.bmm(d_out.reshape(G, T * B, P), weight_hr).view(G, T, B, H)
        dc_carry = None
        rec_, coef_, coef_c_, f_ = d_rec.unbind(1), coef.unbind(1), coef_c.unbind(1), f.unbind(1)
        out_ = d_out.unbind(1) if weight_hr is None else dm_out.unbind(1)
        for t in reversed(range(T)):
            if weight_hr is None:
                dm = out_[t] + rec_[t]  # (G, B, H)
            else:
                dm = out_[t] if t == T - 1 else torch.baddbmm(out_[t], rec_[t], weight_hr)
            dc = dm * coef_c_[t] if dc_carry is None else torch.addcmul(dc_carry, dm, coef_c_[t])
            dp = coef_[t].mul_(torch.cat([dc, dc, dm, dc], dim=-1))  # dpre_t, (G, B, 4H)
            if t:
                dc_carry = dc * f_[t]
                torch.bmm(dp, weight_hh, out=rec_[t - 1])  # (G, B, 4H) -> (G, B, P)
        d_steps = d_pre.view(G, T * B, H4)
        d_x = torch.bmm(d_steps, weight_ih).view(G, T, B, -1).transpose(1, 2) if ctx.needs_input_grad[0] else None
        d_w_ih = torch.bmm(d_steps.transpose(1, 2), x_steps)
        d_w_hh = torch.bmm(d_steps.transpose(1, 2), hidden[:, :-1].reshape(G, T * B, P))
        d_bias = d_steps.sum(dim=1)
        d_w_hr = None
        if weight_hr is not None:
            d_hidden = d_rec.add_(d_out).view(G, T * B, P)  # the whole gradient reaching each h_t
            d_w_hr = torch.bmm(d_hidden.transpose(1, 2), m.reshape(G, T * B, H))
        return d_x, d_w_ih, d_w_hh, d_bias, d_w_hr


def reverse_padded(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Reverse each sequence of (B, T, ...) ``x`` within its own length; padding stays where it is.

    ``[a, b, c, pad, pad]`` with length 3 becomes ``[c, b, a, pad, pad]``, so a backward LSTM run on the
    result starts at the last real token, never at padding. Applying it twice gives ``x`` back.
    """
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    _check_lengths(lengths, B, T)
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T): source position of each output position
    index = index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)  # (B, T) -> (B, T, ...)
    return x.gather(1, index)


def _check_state(state: LSTMState, B: int, h_size: int, c_size: int) -> None:
    """Raise ``ValueError`` unless ``state`` is a pair (h, c) of shapes (B, h_size) and (B, c_size)."""
    if not (isinstance(state, (tuple, list)) and len(state) == 2 and all(isinstance(s, Tensor) for s in state)):
        raise ValueError(f"state must be a pair of tensors (h, c), got {type(state).__name__}")
    h, c = state
    if tuple(h.shape) != (B, h_size) or tuple(c.shape) != (B, c_size):
        raise ValueError(
            f"state (h, c) must have shapes {(B, h_size)} and {(B, c_size)}, got {tuple(h.shape)} and {tuple(c.shape)}"
        )


def _check_lengths(lengths: Tensor, B: int, T: int) -> None:
    """Raise ``ValueError`` unless ``lengths`` is a (B,) integer tensor with values in [1, T]."""
    if (
        not isinstance(lengths, Tensor)
        or lengths.shape != (B,)
        or lengths.is_floating_point()
        or lengths.dtype == torch.bool
    ):
        got = f"{tuple(lengths.shape)} {lengths.dtype}" if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"lengths must be a (B,) = ({B},) integer tensor, got {got}")
    if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"lengths must lie in [1, T={T}], got values in [{int(lengths.min())}, {int(lengths.max())}]")
