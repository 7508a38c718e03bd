"""ELMo: a forward and a backward LSTM language model, concatenated (Peters et al. 2018), CPU-sized.

    x_k = E[token_k]                                             one token embedding, shared
    →h_{k,1} = →LSTM_1(x_1 .. x_k),   →h_{k,j} = →LSTM_j(→h_{.,j-1}) + →h_{k,j-1}  (j >= 2, residual)
    ←h_{k,1} = ←LSTM_1(x_k .. x_n),   ←h_{k,j} likewise, right to left
    P(t_{k+1} | t_1..t_k) = softmax(W →h_{k,L} + b)                one softmax, shared
    P(t_{k-1} | t_k..t_n) = softmax(W ←h_{k,L} + b)
    ELMo_k = γ Σ_j s_j [→h_{k,j}; ←h_{k,j}],   with h_{k,0} = [x_k; x_k]        (ScalarMix)

The two directions never see each other: position k's representation is left context and right context
side by side ("shallow" bidirectionality), which BERT replaces with joint attention to both sides.

Paper vs code:
- Input: the paper builds each token vector from characters (a char-CNN with 2048 filters and two
  highway layers, projected to 512). Here a plain token embedding of size ``d_model`` does that job, so
  the model cannot handle unseen words; the rest of the architecture is the paper's.
- Sizes: the paper's LSTMs have 4096 cells projected to 512 (``d_hidden``/``d_model`` here) in 2 layers.
- The paper clips cell and projection values ([-3, 3]); this code does not, so it can use ``torch.nn.LSTM``.
- Right padding never reaches the backward LM: each sequence is reversed within its own length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bertcourse.base import PreTrainedModel
from bertcourse.lstm import LSTM, lstm_group, reverse_padded
from bertcourse.objectives import IGNORE_INDEX, backward_lm_loss, causal_lm_loss
from bertcourse.outputs import ELMoOutput, check_labels
from bertcourse.scalar_mix import ScalarMix
from bertcourse.validation import check_bool, check_inputs, check_int, check_parameter_budget, check_probability

__all__ = ["ELMo", "ELMoConfig"]


@dataclass
class ELMoConfig:
    """Hyper-parameters of :class:`ELMo`. Defaults are CPU-sized; comments give the paper's model."""

    vocab_size: int  # number of token ids V; paper: ~793k words in the softmax (inputs are characters)
    d_model: int = 128  # token-embedding and projected-LSTM size; paper: 512 (char-CNN output, LSTM projection)
    d_hidden: int = 256  # LSTM cells per layer and direction, projected to d_model; paper: 4096
    n_layers: int = 2  # LSTM layers per direction; paper: 2
    dropout: float = 0.1  # dropout on the embeddings, between layers and before the softmax; paper: 0.1
    fused: bool = True  # True: fast kernels (lstm_group on CPU, nn.LSTM on GPU); False: the explicit cell loop

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("vocab_size", "d_model", "d_hidden", "n_layers"):
            check_int(getattr(self, field), f"{name}.{field}", minimum=1)
        if self.d_model >= self.d_hidden:
            raise ValueError(f"{name}.d_model={self.d_model} must be < d_hidden={self.d_hidden} (a projection)")
        check_probability(self.dropout, f"{name}.dropout")
        check_bool(self.fused, f"{name}.fused")
        V, D, C = self.vocab_size, self.d_model, self.d_hidden
        per_layer = 2 * (4 * C * (2 * D) + C * D)  # both directions: gates on [x; h] and the projection
        check_parameter_budget(name, 2 * V * D + self.n_layers * per_layer, "vocab_size, d_model, d_hidden, n_layers")


class ELMo(PreTrainedModel):
    """Bidirectional LSTM language model with a shared embedding and softmax, and a scalar mix on top.

    State-dict keys: ``embeddings.weight``, ``forward_lstms.{j}.rnn.*`` and ``backward_lstms.{j}.rnn.*``
    (``torch.nn.LSTM`` names, with ``weight_hr_l0`` the projection), ``lm_head.{weight,bias}``, and
    ``scalar_mix.{weights,gamma}``.
    """

    config_class = ELMoConfig

    def __init__(self, config: ELMoConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.forward_lstms = nn.ModuleList(self._lstm() for _ in range(config.n_layers))
        self.backward_lstms = nn.ModuleList(self._lstm() for _ in range(config.n_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size)
        self.scalar_mix = ScalarMix(config.n_layers + 1)

    def _lstm(self) -> LSTM:
        c = self.config
        return LSTM(c.d_model, c.d_hidden, proj_size=c.d_model, fused=c.fused)

    def _lengths(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor | None:
        """Validate the inputs; return (B,) lengths of the right-padded sequences, or None without a mask."""
        check_inputs(input_ids, attention_mask, vocab_size=self.config.vocab_size)
        if attention_mask is None:
            return None
        lengths = attention_mask.long().sum(dim=1)  # (B,)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        if not bool((attention_mask.bool() == (positions < lengths.unsqueeze(1))).all()):
            raise ValueError("attention_mask must be right-padded: ones, then zeros, in every row")
        if int(lengths.min()) < 1:
            raise ValueError("attention_mask must keep at least one token in every row, got an all-padding row")
        return lengths

    def _run(self, layers: nn.ModuleList, x: Tensor, real: Tensor | None) -> list[Tensor]:
        """One direction's LSTM stack on (B, T, d_model) inputs; returns each layer's (B, T, d_model) states.

        ``real`` (B, T, 1) is 1 at tokens and 0 at padding, which comes after the tokens of each row. The
        LSTMs run over the whole padded batch, unpacked: a step only sees the steps before it, so padding
        never reaches a token's state, and multiplying by ``real`` sets the padding's states to zero.
        (Packed sequences give the same numbers, but their per-step slices make the backward pass slow.)
        """
        states: list[Tensor] = []
        h = x
        for j, lstm in enumerate(layers):
            out, _ = lstm(self.dropout(h))
            if real is not None:
                out = out * real  # padding positions: zero, as a packed LSTM returns them
            h = out if j == 0 else out + h  # residual connection from the second layer on
            states.append(h)
        return states

    def _run_pairs(self, x: Tensor, real: Tensor | None) -> list[Tensor]:
        """:meth:`_run` for both directions at once: (2, B, T, d_model) inputs, forward then reversed."""
        states: list[Tensor] = []
        h = x
        for j, pair in enumerate(zip(self.forward_lstms, self.backward_lstms, strict=True)):
            out = lstm_group(self.dropout(h), pair)
            if real is not None:
                out = out * real
            h = out if j == 0 else out + h
            states.append(h)
        return states

    def _layers(self, input_ids: Tensor, attention_mask: Tensor | None) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Embeddings (B, T, d_model) and both directions' layer states, aligned to the input positions."""
        lengths = self._lengths(input_ids, attention_mask)
        x = self.embeddings(input_ids)  # (B, T) -> (B, T, d_model)
        real = None if attention_mask is None else attention_mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        # The backward LM reads each sequence right to left: reverse within its length, run, reverse back.
        x_reversed = reverse_padded(x, lengths)
        if self.config.fused and x.device.type == "cpu":  # both directions in one loop (lstm_group)
            pairs = self._run_pairs(torch.stack([x, x_reversed]), real)  # each (2, B, T, d_model)
            forward_states, reversed_states = [h[0] for h in pairs], [h[1] for h in pairs]
        else:
            forward_states = self._run(self.forward_lstms, x, real)
            reversed_states = self._run(self.backward_lstms, x_reversed, real)
        backward_states = [reverse_padded(h, lengths) for h in reversed_states]
        return x, forward_states, backward_states

    @staticmethod
    def _stack(x: Tensor, forward_states: list[Tensor], backward_states: list[Tensor]) -> tuple[Tensor, ...]:
        """The layer stack: [x; x], then [→h_j; ←h_j] for every layer j, each (B, T, 2 d_model)."""
        layer0 = torch.cat([x, x], dim=-1)  # (B, T, d_model) -> (B, T, 2 d_model)
        pairs = [torch.cat([f, b], dim=-1) for f, b in zip(forward_states, backward_states, strict=True)]
        return (layer0, *pairs)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> ELMoOutput:
        """Both LMs' next/previous-token logits.

        Args:
            input_ids: (B, T) token ids, right-padded when ``attention_mask`` is given.
            attention_mask: (B, T) 1 = token, 0 = padding (ones then zeros in each row).
            labels: (B, T) target ids, *unshifted* (``labels=input_ids`` trains both LMs): forward position
                t is scored against ``labels[:, t + 1]``, backward position t against ``labels[:, t - 1]``;
                -100 is ignored. Where ``attention_mask`` is 0 the label is ignored, and a padding position
                never predicts a real token, so padding is neither input nor target of the loss.

        Returns:
            :class:`ELMoOutput`; ``loss`` is the mean of ``forward_loss`` and ``backward_loss``.
        """
        x, forward_states, backward_states = self._layers(input_ids, attention_mask)
        top = torch.stack([forward_states[-1], backward_states[-1]])  # (2, B, T, d_model): one shared softmax
        forward_logits, backward_logits = self.lm_head(self.dropout(top))  # (2, B, T, V) -> 2 x (B, T, V)
        loss = forward_loss = backward_loss = None
        if labels is not None:
            forward_labels, backward_labels = self._direction_labels(labels, input_ids, attention_mask)
            forward_loss = causal_lm_loss(forward_logits, forward_labels)
            backward_loss = backward_lm_loss(backward_logits, backward_labels)
            loss = 0.5 * (forward_loss + backward_loss)
        return ELMoOutput(
            logits=forward_logits,
            forward_logits=forward_logits,
            backward_logits=backward_logits,
            loss=loss,
            hidden_states=self._stack(x, forward_states, backward_states),
            forward_loss=forward_loss,
            backward_loss=backward_loss,
        )

    def _direction_labels(
        self, labels: Tensor, input_ids: Tensor, attention_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Labels for each direction with -100 wherever the target or the predicting position is padding."""
        check_labels(labels, "labels", tuple(input_ids.shape), self.config.vocab_size)
        if attention_mask is None:
            return labels, labels
        pad = attention_mask == 0  # (B, T)
        labels = labels.masked_fill(pad, IGNORE_INDEX)  # padding is never a target
        # Forward position t predicts label t + 1: right padding means a padded t has a padded t + 1.
        # Backward position t predicts label t - 1: hide label t - 1 when position t is padding.
        shifted_pad = torch.cat([pad[:, 1:], torch.zeros_like(pad[:, :1])], dim=1)  # (B, T): is t + 1 padding?
        return labels, labels.masked_fill(shifted_pad, IGNORE_INDEX)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """ELMo representations (B, T, 2 d_model): the scalar mix of the layer stack.

        Position t combines the forward states (tokens <= t) and the backward states (tokens >= t).
        """
        x, forward_states, backward_states = self._layers(input_ids, attention_mask)
        return self.scalar_mix(self._stack(x, forward_states, backward_states))
