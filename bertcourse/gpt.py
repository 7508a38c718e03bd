"""GPT: a left-to-right Transformer language model, in the GPT-2 layout (Radford et al. 2018, 2019).

    h_0 = W_tok[x] + W_pos[positions]
    h_l = PreLNBlock_l(h_{l-1}),  causal: position i attends to positions <= i only
    P(x_{t+1} | x_{<=t}) = softmax(LN_f(h_L)_t W_tok^T)

Paper vs code: GPT-1 used post-LN blocks; GPT-2 (and this file) use pre-LN blocks plus a final
LayerNorm ``final_norm``, the tanh approximation of GELU, LayerNorm epsilon 1e-5, and an LM head tied
to the token embedding. Hugging Face's GPT-2 stores its linear maps as ``Conv1D`` with (in, out) weights,
the transpose of ``nn.Linear`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bertcourse.attention import KVCache, cache_to, padding_or_none
from bertcourse.base import PreTrainedModel
from bertcourse.embeddings import Embeddings
from bertcourse.feedforward import Activation
from bertcourse.objectives import causal_lm_loss
from bertcourse.outputs import BaseModelOutput, CausalLMOutput, check_labels
from bertcourse.transformer import (
    TransformerConfig,
    init_weights_,
    run_blocks,
    scale_residual_init_,
    transformer_stack,
)
from bertcourse.validation import CACHE_DTYPES, check_inputs, check_int, check_positive

__all__ = ["GPT", "GPTConfig"]

INIT_STD = 0.02  # GPT-2's initializer_range


@dataclass
class GPTConfig(TransformerConfig):
    """Hyper-parameters of :class:`GPT`. Defaults are CPU-sized; comments give GPT-2 small (124M)."""

    vocab_size: int  # number of token ids V; GPT-2: 50257 byte-level BPE tokens
    d_model: int = 128  # hidden size H of every position; GPT-2 small: 768
    n_layers: int = 4  # number of Transformer blocks; GPT-2 small: 12
    n_heads: int = 4  # attention heads per block (d_model / n_heads per head); GPT-2 small: 12
    d_ff: int = 512  # inner size of the feed-forward network; GPT-2 small: 3072 (4 * d_model)
    max_len: int = 256  # number of learned positions, the longest context; GPT-2: 1024
    dropout: float = 0.1  # dropout on embeddings and on each sub-layer's output; GPT-2: 0.1
    attention_dropout: float = 0.1  # dropout on the attention weights; GPT-2: 0.1
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon; GPT-2: 1e-5
    activation: Activation = "gelu_tanh"  # FFN non-linearity; GPT-2: tanh-approximated GELU ("gelu_new")
    bias: bool = True  # biases in linear maps and LayerNorms; GPT-2: True


class GPT(PreTrainedModel):
    """Decoder-only Transformer language model: token + position embeddings, pre-LN causal blocks,
    final LayerNorm, LM head tied to the token embedding.

    State-dict keys: ``embeddings.{word,position}_embeddings.weight``, ``blocks.{i}.attn.in_proj.*``,
    ``blocks.{i}.attn.out_proj.*``, ``blocks.{i}.attn_norm.*``, ``blocks.{i}.ff.fc1.*``,
    ``blocks.{i}.ff.fc2.*``, ``blocks.{i}.ff_norm.*``, ``final_norm.*`` and ``lm_head.weight``
    (the token embedding, stored once in checkpoints).
    """

    config_class = GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.embeddings = Embeddings(config.vocab_size, config.d_model, config.max_len, dropout=config.dropout)
        self.blocks = transformer_stack(config, norm_first=True)  # GPT-2: pre-LN
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        init_weights_(self, std=INIT_STD)
        self.lm_head.weight = self.embeddings.word_embeddings.weight  # weight tying: logits = h W_tok^T
        scale_residual_init_(self.blocks, config.n_layers, std=INIT_STD)  # GPT-2: out_proj, fc2 / sqrt(2 L)

    def _past_length(self, past_key_values: tuple[KVCache, ...] | None, batch_size: int) -> int:
        """Number of positions already in the cache; checks it has one (B, h, T_past, d) pair per block."""
        if past_key_values is None:
            return 0
        if len(past_key_values) != len(self.blocks):
            raise ValueError(
                f"past_key_values must hold {len(self.blocks)} (key, value) pairs, got {len(past_key_values)}"
            )
        key = past_key_values[0][0]
        if key.dim() != 4 or key.shape[0] != batch_size:
            raise ValueError(f"past_key_values keys must be (B={batch_size}, h, T_past, d), got {tuple(key.shape)}")
        return key.shape[2]

    def _transform(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        past_key_values: tuple[KVCache, ...] | None,
        use_cache: bool,
        output_attentions: bool,
        output_hidden_states: bool,
        position_ids: Tensor | None = None,
    ) -> BaseModelOutput:
        """Validate the inputs, embed them and run the blocks and the final LayerNorm: states (B, T, H)."""
        check_inputs(
            input_ids,
            attention_mask if past_key_values is None else None,  # with a cache the mask is longer: below
            vocab_size=self.config.vocab_size,
            max_len=self.config.max_len,
        )
        B, T = input_ids.shape
        past_len = self._past_length(past_key_values, B)
        if past_len and attention_mask is not None and attention_mask.shape != (B, past_len + T):
            raise ValueError(
                f"with past_key_values, attention_mask must cover past and new tokens, (B, T_past + T) = "
                f"{(B, past_len + T)}, got {tuple(attention_mask.shape)}"
            )
        attention_mask = padding_or_none(attention_mask)
        x = self.embeddings(input_ids, position_offset=past_len, position_ids=position_ids)  # (B, T, H)
        stack = run_blocks(
            self.blocks, x, attention_mask, True, past_key_values, use_cache, output_attentions, output_hidden_states
        )
        x = self.final_norm(stack.hidden)
        hidden_states = stack.hidden_states
        if hidden_states is not None:  # as in Hugging Face, the last entry is taken after the final LayerNorm
            hidden_states = (*hidden_states[:-1], x)
        return BaseModelOutput(x, stack.past_key_values, hidden_states, stack.attentions)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        past_key_values: tuple[KVCache, ...] | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        position_ids: Tensor | None = None,
    ) -> CausalLMOutput:
        """Next-token logits for every position.

        Args:
            input_ids: (B, T) token ids (the new tokens only, when ``past_key_values`` is given).
            attention_mask: (B, T) 1 = token, 0 = padding; with a cache (B, T_past + T).
            labels: (B, T) target ids, *unshifted* as in Hugging Face: position t is scored against
                ``labels[:, t + 1]``, so ``labels=input_ids`` trains next-token prediction; -100 is ignored.
            past_key_values: the ``past_key_values`` of a previous call with ``use_cache=True``, in the
                weights' dtype or cast to bfloat16/float16 (new keys and values then join it at 16 bits).
            use_cache: return keys and values so the next call need only feed the new tokens.
            output_attentions / output_hidden_states: also return per-layer weights / states.
            position_ids: (B, T) positions of the new tokens; default ``T_past + 0..T-1``. A left-padded
                row passes its own count of real tokens, as :meth:`generate` does.

        Returns:
            :class:`CausalLMOutput` with ``logits`` (B, T, V) and ``loss`` when labels are given.
        """
        states = self._transform(
            input_ids, attention_mask, past_key_values, use_cache, output_attentions, output_hidden_states, position_ids
        )
        logits = self.lm_head(states.last_hidden_state)  # (B, T, H) -> (B, T, V)
        loss = None
        if labels is not None:
            check_labels(labels, "labels", tuple(input_ids.shape), self.config.vocab_size)
            loss = causal_lm_loss(logits, labels)
        return CausalLMOutput(logits, loss, states.past_key_values, states.hidden_states, states.attentions)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Contextual token representations (B, T, H): the final-LayerNorm states each LM prediction reads.

        Position t has seen tokens 0..t only.
        """
        return self._transform(input_ids, attention_mask, None, False, False, False).last_hidden_state

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        do_sample: bool = False,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        attention_mask: Tensor | None = None,
        cache_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Continue each prompt by ``max_new_tokens`` tokens; returns (B, T + max_new_tokens).

        Greedy (``do_sample=False``) takes the most likely token. Sampling draws from
        softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when given.
        With ``use_cache`` each step feeds only the newest token and reuses the keys and values of
        the earlier ones; the tokens are the same as recomputing the whole sequence every step.

        Prompts of different lengths go in one batch **left-padded**, with ``attention_mask`` (B, T),
        1 = token and 0 = padding, each row ``0 ... 0 1 ... 1``: every prompt then ends in the last
        column, and its new tokens follow it directly. Positions count real tokens only
        (``cumsum(attention_mask) - 1``) and padding is hidden from every query, so each row gets
        the tokens it would get alone. The padding stays at the start of the returned rows.
        Call ``model.eval()`` first: in train mode dropout makes every step random.

        ``cache_dtype`` (``torch.bfloat16`` or ``torch.float16``) keeps the key/value cache at 16 bits
        after the prompt: each step then reads half the bytes, so its time grows less with the context,
        but the logits are no longer equal to recomputing (bfloat16 keeps 8 significant bits, 2 to 3 decimal digits),
        and a near tie can pick another token. The default keeps the weights' dtype.
        """
        check_int(max_new_tokens, "max_new_tokens", minimum=0)
        check_positive(temperature, "temperature")
        if top_k is not None:
            check_int(top_k, "top_k", minimum=1)
        if cache_dtype is not None and cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype must be None or one of {CACHE_DTYPES}, got {cache_dtype!r}")
        if cache_dtype is not None and not use_cache:
            raise ValueError("cache_dtype sets the key/value cache's dtype, so it needs use_cache=True")
        check_inputs(input_ids, attention_mask, vocab_size=self.config.vocab_size, max_len=self.config.max_len)
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids must hold at least one prompt token per sequence")
        if input_ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_len={self.config.max_len}"
            )
        mask = None if attention_mask is None else _left_padding_mask(attention_mask)  # (B, T) int64
        tokens = input_ids
        past: tuple[KVCache, ...] | None = None
        for _ in range(max_new_tokens):
            step_input = tokens if past is None else tokens[:, -1:]  # (B, T) first, then (B, 1)
            positions = None
            if mask is not None:  # count real tokens only: (B, T_total) -> the step's columns
                positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, -step_input.shape[1] :]
            out = self(step_input, mask, past_key_values=past, use_cache=use_cache, position_ids=positions)
            past = out.past_key_values if use_cache else None
            if past is not None and cache_dtype is not None and past[0][0].dtype != cache_dtype:
                past = tuple(cache_to(layer, cache_dtype) for layer in past)  # once, after the prompt
            logits = out.logits[:, -1, :]  # (B, V): the prediction for the next position
            if do_sample:
                next_token = self._sample(logits, temperature, top_k, generator)
            else:
                next_token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            tokens = torch.cat([tokens, next_token], dim=1)  # (B, T) -> (B, T + 1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(next_token)], dim=1)  # the new token is real
        return tokens

    @staticmethod
    def _sample(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
        """Draw one token per row of (B, V) logits from softmax(logits / temperature), top-k filtered."""
        # Shift by the row maximum first: a tiny temperature then gives -inf, never inf - inf = NaN.
        logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature  # (B, V), max 0
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def _left_padding_mask(attention_mask: Tensor) -> Tensor:
    """Check a (B, T) prompt mask for :meth:`GPT.generate`: 0/1, left padding only, a token in every row."""
    mask = attention_mask.long()
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    if not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        raise ValueError(
            "generate needs left padding: each attention_mask row must be 0 ... 0 1 ... 1, so every prompt "
            "ends in the last column (pad on the left, as tokenizers do with padding_side='left')"
        )
    if not bool(mask[:, -1].all()):
        raise ValueError("attention_mask has a row with no token: every prompt needs at least one")
    return mask
