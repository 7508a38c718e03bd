"""BERT: Bidirectional Encoder Representations from Transformers (Devlin et al. 2019).

    h_0 = LN(W_tok[x] + W_seg[s] + W_pos[positions])
    h_l = PostLNBlock_l(h_{l-1}),  not causal: every position attends to every (non-padding) position
    pooled = tanh(W_p h_L[CLS] + b_p)

Pre-training heads: masked LM (predict the original token at masked positions, from both sides at
once) and next-sentence prediction on the pooled [CLS] vector. Fine-tuning heads: a linear classifier
on the pooled vector (one label per sequence) or on every token (one label per token).

Paper vs code: BERT keeps the post-LN blocks of Vaswani et al. (2017), LayerNorm epsilon 1e-12 and the
exact (erf) GELU of Hugging Face's ``"gelu"``; Google's original TensorFlow code used the tanh
approximation. Next-sentence labels follow Hugging Face: 0 = sentence B follows A, 1 = B is random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bertcourse.attention import padding_or_none
from bertcourse.base import PreTrainedModel
from bertcourse.embeddings import Embeddings
from bertcourse.feedforward import Activation, gelu
from bertcourse.heads import classify
from bertcourse.objectives import IGNORE_INDEX, masked_lm_loss, next_sentence_loss
from bertcourse.outputs import (
    BertForPreTrainingOutput,
    BertModelOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    check_labels,
)
from bertcourse.transformer import (
    TransformerConfig,
    init_weights_,
    run_blocks,
    scale_residual_init_,
    transformer_stack,
)
from bertcourse.validation import check_bool, check_inputs, check_int

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertPreTrainedModel",
    "MaskedLMHead",
]

INIT_STD = 0.02  # BERT's initializer_range


@dataclass
class BertConfig(TransformerConfig):
    """Hyper-parameters of the BERT models. Defaults are CPU-sized; comments give BERT-base (110M)."""

    vocab_size: int  # number of token ids V; BERT-base uncased: 30522 WordPiece tokens
    d_model: int = 128  # hidden size H of every position; BERT-base: 768
    n_layers: int = 2  # number of Transformer blocks; BERT-base: 12
    n_heads: int = 4  # attention heads per block (d_model / n_heads per head); BERT-base: 12
    d_ff: int = 512  # inner size of the feed-forward network; BERT-base: 3072 (4 * d_model)
    max_len: int = 128  # number of learned positions, the longest input; BERT-base: 512
    type_vocab_size: int = 2  # number of segment embeddings (sentence A / B); BERT-base: 2
    dropout: float = 0.1  # dropout on embeddings, sub-layer outputs and classifier input; BERT-base: 0.1
    attention_dropout: float = 0.1  # dropout on the attention weights; BERT-base: 0.1
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon; BERT-base: 1e-12
    activation: Activation = "gelu"  # FFN and MLM-transform non-linearity; BERT-base: exact (erf) GELU
    bias: bool = True  # biases in every linear map and LayerNorm; BERT: True (False is refused)
    pad_token_id: int = 0  # id of [PAD], whose embedding starts at zero; BERT-base uncased: 0
    num_labels: int = 2  # classes of the fine-tuning heads (2 for SST-2, 3 for MNLI); 1 = regression (STS-B)
    norm_first: bool = (
        False  # GPT-2's layout: no embedding LayerNorm, pre-LN blocks scaled as GPT-2's, a final LayerNorm
    )
    mlm_transform: bool = True  # the MLM head's dense + GELU + LayerNorm before the tied decoder; False: decoder only
    pooler: bool = True  # tanh(W_p h_[CLS] + b_p) for NSP and classification; False: h_[CLS] itself
    tie_decoder: bool = True  # the MLM decoder's weight is the token embedding; False: a weight of its own

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bias is not True:
            raise ValueError(f"BertConfig.bias must be True (every BERT layer has biases), got {self.bias!r}")
        for flag in ("norm_first", "mlm_transform", "pooler", "tie_decoder"):
            check_bool(getattr(self, flag), f"BertConfig.{flag}")
        for field in ("type_vocab_size", "num_labels"):
            check_int(getattr(self, field), f"BertConfig.{field}", minimum=1)
        pad = self.pad_token_id
        if check_int(pad, "BertConfig.pad_token_id", minimum=0) >= self.vocab_size:
            raise ValueError(f"BertConfig.pad_token_id must lie in [0, vocab_size={self.vocab_size}), got {pad!r}")


class BertModel(PreTrainedModel):
    """The BERT encoder: embeddings with segments and LayerNorm, post-LN bidirectional blocks, and a pooler.

    State-dict keys: ``embeddings.{word,position,token_type}_embeddings.weight``,
    ``embeddings.layer_norm.*``, ``blocks.{i}.attn.in_proj.*``, ``blocks.{i}.attn.out_proj.*``,
    ``blocks.{i}.attn_norm.*``, ``blocks.{i}.ff.fc1.*``, ``blocks.{i}.ff.fc2.*``, ``blocks.{i}.ff_norm.*``,
    ``pooler.*`` (absent with ``add_pooling_layer=False``).
    """

    config_class = BertConfig

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.embeddings = Embeddings(
            config.vocab_size,
            config.d_model,
            config.max_len,
            type_vocab_size=config.type_vocab_size,
            dropout=config.dropout,
            layer_norm_eps=None if config.norm_first else config.layer_norm_eps,  # GPT-2: no embedding LayerNorm
            padding_idx=config.pad_token_id,
        )
        self.blocks = transformer_stack(config, norm_first=config.norm_first)  # BERT: post-LN (the default, False)
        # pre-LN leaves the residual stream un-normalised: a final LayerNorm, as GPT-2's, ends the stack
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_first else None
        pooling = add_pooling_layer and config.pooler
        self.pooler = nn.Linear(config.d_model, config.d_model) if pooling else None  # W_p, b_p
        self._pooled = add_pooling_layer  # config.pooler=False: the pooled vector is h_[CLS] itself
        init_weights_(self, std=INIT_STD)
        if config.norm_first:
            scale_residual_init_(self.blocks, config.n_layers, std=INIT_STD)  # as GPT-2: out_proj, fc2 / sqrt(2 L)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BertModelOutput:
        """Encode (B, T) token ids into contextual states (B, T, H) and a pooled [CLS] vector (B, H).

        Args:
            input_ids: (B, T) token ids, [CLS] first. attention_mask: (B, T) 1 = token, 0 = padding.
            token_type_ids: (B, T) segment ids, 0 = sentence A, 1 = sentence B; all 0 when omitted.
            output_attentions / output_hidden_states: also return per-layer weights / states.
        """
        c = self.config
        check_inputs(
            input_ids,
            attention_mask,
            vocab_size=c.vocab_size,
            max_len=c.max_len,
            token_type_ids=token_type_ids,
            type_vocab_size=c.type_vocab_size,
        )
        attention_mask = padding_or_none(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        stack = run_blocks(
            self.blocks,
            x,
            attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        x = self.final_norm(stack.hidden) if self.final_norm is not None else stack.hidden
        pooled = None  # (B, H) from [CLS]
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(x[:, 0]))
        elif self._pooled:
            pooled = x[:, 0]
        return BertModelOutput(x, pooled, stack.hidden_states, stack.attentions)

    def encode(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Contextual token representations (B, T, H); every position has seen the whole sequence."""
        return self(input_ids, attention_mask, token_type_ids).last_hidden_state


class MaskedLMHead(nn.Module):
    """Predict a token at every position: logits = LN(GELU(h W_t + b_t)) W_tok^T + b, (B, T, H) -> (B, T, V).

    The decoder's weight is the token embedding of the encoder (tied, as in BERT; ``config.tie_decoder=False``:
    its own); its bias is its own. ``config.mlm_transform=False`` drops the transform: logits = h W_tok^T + b,
    GPT-2's LM head plus a bias.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.transform = config.mlm_transform
        if config.mlm_transform:
            self.dense = nn.Linear(config.d_model, config.d_model)  # W_t, b_t: the "transform"
            self.activation = gelu(config.activation)
            self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.d_model, config.vocab_size)  # bias b: one per vocabulary entry
        init_weights_(self, std=INIT_STD)
        if config.tie_decoder:
            self.decoder.weight = word_embeddings.weight  # tied: (V, H)

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, T, H) -> (B, T, V)."""
        if self.transform:
            hidden = self.layer_norm(self.activation(self.dense(hidden)))  # (B, T, H)
        return self.decoder(hidden)


class BertPreTrainedModel(PreTrainedModel):
    """Base of the BERT heads: a :class:`BertModel` at ``.bert`` and its ``encode``."""

    config_class = BertConfig
    bert: BertModel

    def encode(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Contextual token representations (B, T, H) of the encoder under this head."""
        return self.bert.encode(input_ids, attention_mask, token_type_ids)


def _masked_positions_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """:func:`masked_lm_loss` of (B, T, V) logits against (B, T) labels, computed on the masked positions only.

    The same mean over the same targets; on a CPU it skips the softmax over the positions without a target
    (most of them: BERT masks 15 %). On a GPU, where picking the positions out would wait for the device,
    the loss runs over every position, as ``masked_lm_loss`` does.
    """
    if logits.device.type != "cpu":
        return masked_lm_loss(logits, labels)
    counted = labels != IGNORE_INDEX  # (B, T)
    return masked_lm_loss(logits[counted], labels[counted])  # (N, V) vs (N,)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the masked-LM head only (no pooler, as in Hugging Face).

    Extra state-dict keys: ``mlm_head.dense.*``, ``mlm_head.layer_norm.*``, ``mlm_head.decoder.bias``
    and ``mlm_head.decoder.weight`` (the word embedding, stored once in checkpoints).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word_embeddings)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> MaskedLMOutput:
        """Token logits (B, T, V); ``labels`` (B, T) hold the original ids at masked positions, -100 elsewhere."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        logits = self.mlm_head(out.last_hidden_state)  # (B, T, V)
        loss = None
        if labels is not None:
            check_labels(labels, "labels", tuple(input_ids.shape), self.config.vocab_size)
            loss = _masked_positions_loss(logits, labels)
        return MaskedLMOutput(logits, loss, out.hidden_states, out.attentions)


class BertForPreTraining(BertPreTrainedModel):
    """BERT's pre-training: masked LM on every position plus next-sentence prediction on the pooled [CLS].

    Extra state-dict keys: those of :class:`BertForMaskedLM` plus ``bert.pooler.*`` and ``nsp_head.*``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.bert = BertModel(config)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word_embeddings)
        self.nsp_head = nn.Linear(config.d_model, 2)  # logits of (B follows A, B is random)
        init_weights_(self.nsp_head, std=INIT_STD)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        next_sentence_label: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BertForPreTrainingOutput:
        """MLM logits (B, T, V) and NSP logits (B, 2).

        ``loss`` is the MLM loss over ``labels`` (B, T) (-100 = not masked) plus the NSP loss over
        ``next_sentence_label`` (B,) (0 = B follows A, 1 = random); either term alone when only one is given.
        """
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        prediction_logits = self.mlm_head(out.last_hidden_state)  # (B, T, V)
        seq_relationship_logits = self.nsp_head(out.pooler_output)  # (B, H) -> (B, 2)
        loss = None
        if labels is not None:
            check_labels(labels, "labels", tuple(input_ids.shape), self.config.vocab_size)
            loss = _masked_positions_loss(prediction_logits, labels)
        if next_sentence_label is not None:
            check_labels(next_sentence_label, "next_sentence_label", (input_ids.shape[0],), 2)
            nsp_loss = next_sentence_loss(seq_relationship_logits, next_sentence_label)
            loss = nsp_loss if loss is None else loss + nsp_loss
        return BertForPreTrainingOutput(
            prediction_logits, seq_relationship_logits, loss, out.hidden_states, out.attentions
        )


class BertForSequenceClassification(BertPreTrainedModel):
    """One label per sequence: logits = Dropout(pooled [CLS]) W_c + b_c, (B, num_labels).

    With ``num_labels=1`` it is a regression head, as in Hugging Face: ``labels`` are (B,) floats and the
    loss is the mean squared error.

    Extra state-dict keys: ``classifier.weight`` (num_labels, H) and ``classifier.bias``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        init_weights_(self.classifier, std=INIT_STD)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> SequenceClassifierOutput:
        """Class logits (B, C); ``loss`` is the cross-entropy against ``labels`` (B,) (-100 ignored), or with
        one label the mean squared error against float ``labels`` (B,)."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        logits, loss = classify(out.pooler_output, self.dropout, self.classifier, labels)  # (B, H) -> (B, C)
        return SequenceClassifierOutput(logits, loss, out.hidden_states, out.attentions)


class BertForTokenClassification(BertPreTrainedModel):
    """One label per token (tagging): logits = Dropout(h_t) W_c + b_c, (B, T, num_labels); no pooler.

    Extra state-dict keys: ``classifier.weight`` (num_labels, H) and ``classifier.bias``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = self.checked_config(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        init_weights_(self.classifier, std=INIT_STD)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> TokenClassifierOutput:
        """Tag logits (B, T, C); ``loss`` is the cross-entropy against ``labels`` (B, T) (-100 ignored)."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states)
        logits, loss = classify(out.last_hidden_state, self.dropout, self.classifier, labels)  # (B, T, C)
        return TokenClassifierOutput(logits, loss, out.hidden_states, out.attentions)
