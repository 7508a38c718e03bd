"""From a name to a model: the one table that maps ``elmo``, ``gpt`` and ``bert`` and a size to a config,
and a config to the model that pre-trains with its objective.

    config = model_config("bert", vocab_size=320, size="tiny")   # BertConfig
    model = build_model("bert", config)                         # BertForPreTraining: masked LM + NSP
    train(model, data.batches(32), objective="bert", ...)        # bertcourse.engine: the one loop

The command line (``python -m bertcourse.pretrain``), the head-to-head experiment
(``bertcourse.experiments``), the chapters and the tests build their models here; the objective of each
name is ``objectives.PRETRAINING_TERMS[name]``, which the engine trains on.

:data:`VARIANTS` names the pre-training recipes the head-to-head compares (its ablation rows): a model
family, changes to its config, an objective and a masking rate. ``bert`` there is the *controlled*
BERT, GPT's network without the causal mask (:data:`CONTROLLED_BERT`); ``bert-post-ln`` is the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, get_args

from bertcourse.base import PreTrainedModel
from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.gpt import GPT, GPTConfig

__all__ = [
    "CONTROLLED_BERT",
    "MODELS",
    "SIZES",
    "VARIANTS",
    "ModelConfig",
    "ModelName",
    "Variant",
    "build_model",
    "model_config",
    "same_budget_configs",
]

ModelName = Literal["elmo", "gpt", "bert"]
MODELS: tuple[ModelName, ...] = get_args(ModelName)
ModelConfig = ELMoConfig | GPTConfig | BertConfig

_CLASSES: dict[str, tuple[type, type[PreTrainedModel]]] = {
    "elmo": (ELMoConfig, ELMo),  # forward + backward next-token LM
    "gpt": (GPTConfig, GPT),  # left-to-right next-token LM
    "bert": (BertConfig, BertForPreTraining),  # masked LM (80/10/10) + next-sentence prediction
}

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 256, "d_hidden": 128},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 512, "d_hidden": 256},  # the course defaults
    "base": {"d_model": 768, "n_layers": 12, "n_heads": 12, "d_ff": 3072, "d_hidden": 4096},  # BERT-base, GPT-2
}
"""Model sizes; ``base`` is BERT-base / GPT-2 small (ELMo: its paper's 4096 cells, projected to d_model)."""


def _check_name(name: object) -> None:
    if name not in _CLASSES:
        raise ValueError(f"name must be one of {MODELS}, got {name!r}")


def model_config(
    name: ModelName,
    vocab_size: int,
    size: str = "small",
    *,
    max_len: int = 128,
    dropout: float = 0.1,
    pad_token_id: int = 0,
    **overrides: int,
) -> ModelConfig:
    """The config of model ``name`` at ``size`` (a key of :data:`SIZES`), with any size field overridden.

    ``max_len``: positions of the Transformers (unused by ELMo); ``dropout`` everywhere (attention
    weights included); ``pad_token_id``: BERT's [PAD]. ``overrides``: ``d_model``, ``n_layers``,
    ``n_heads``, ``d_ff``, ``d_hidden``.
    """
    _check_name(name)
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    unknown = sorted(set(overrides) - set(SIZES[size]))
    if unknown:
        raise ValueError(f"overrides must be among {sorted(SIZES[size])}, got {unknown}")
    dims = {**SIZES[size], **{k: v for k, v in overrides.items() if v is not None}}
    if name == "elmo":
        return ELMoConfig(vocab_size, dims["d_model"], dims["d_hidden"], dims["n_layers"], dropout)
    common = {k: dims[k] for k in ("d_model", "n_layers", "n_heads", "d_ff")}
    common |= {"max_len": max_len, "dropout": dropout, "attention_dropout": dropout}
    if name == "gpt":
        return GPTConfig(vocab_size, **common)
    return BertConfig(vocab_size, pad_token_id=pad_token_id, **common)


def build_model(name: ModelName, config: ModelConfig) -> PreTrainedModel:
    """The pre-training model of ``name`` from ``config``: ``ELMo``, ``GPT`` or ``BertForPreTraining``."""
    _check_name(name)
    config_class, model_class = _CLASSES[name]
    if not isinstance(config, config_class):
        raise ValueError(f"config of {name!r} must be a {config_class.__name__}, got {type(config).__name__}")
    return model_class(config)


def _elmo_parameters(vocab_size: int, d_model: int, d_hidden: int, n_layers: int) -> int:
    """ELMo's parameter count: embedding, 2 n_layers projected LSTMs, the softmax, the scalar mix.

    One LSTM with input and projection size d and h cells: W_ih (4h, d), W_hh (4h, d), two biases (4h),
    W_hr (d, h): h (9 d + 8) parameters.
    """
    return (
        vocab_size * d_model + 2 * n_layers * d_hidden * (9 * d_model + 8) + vocab_size * (d_model + 1) + n_layers + 2
    )


def same_budget_configs(
    vocab_size: int,
    d_model: int = 128,
    n_layers: int = 2,
    n_heads: int = 4,
    d_ff: int = 512,
    max_len: int = 256,
    dropout: float = 0.1,
) -> dict[ModelName, ModelConfig]:
    """Configs of ELMo, GPT and BERT of one depth and vocabulary, with matched parameter counts.

    GPT and BERT share ``d_model``, ``n_layers``, ``n_heads``, ``d_ff``, ``max_len``; they differ only by
    BERT's segment embeddings, pooler, MLM transform and NSP head. An LSTM layer costs about 9 d^2 per
    direction where a Transformer block costs 12 d^2 for both, and ELMo's softmax is not tied to its
    embedding, so at the same width ELMo would be the largest. Its ``d_model`` is therefore the largest
    multiple of 8 for which some ``d_hidden >= 2 d_model`` (LSTM cells per layer and direction, projected
    down to ``d_model`` as in the paper, which used 4096 -> 512) brings its count within 2% of the mean
    of the other two, with that ``d_hidden``.
    """
    gpt = GPTConfig(vocab_size, d_model, n_layers, n_heads, d_ff, max_len, dropout, dropout)
    bert = BertConfig(vocab_size, d_model, n_layers, n_heads, d_ff, max_len, dropout=dropout, attention_dropout=dropout)
    target = (GPT(gpt).num_parameters() + BertForPreTraining(bert).num_parameters()) / 2
    for width in range(d_model - d_model % 8, 7, -8):
        d_hidden = min(
            range(2 * width, 16 * width),
            key=lambda h, w=width: abs(_elmo_parameters(vocab_size, w, h, n_layers) - target),
        )
        if abs(_elmo_parameters(vocab_size, width, d_hidden, n_layers) - target) <= 0.02 * target:
            elmo = ELMoConfig(vocab_size, width, d_hidden, n_layers, dropout)
            return {"elmo": elmo, "gpt": gpt, "bert": bert}
    raise ValueError(f"no ELMo of width <= d_model={d_model} matches {target:.0f} parameters; raise d_model")


CONTROLLED_BERT: Mapping[str, Any] = MappingProxyType(
    {"norm_first": True, "activation": "gelu_tanh", "layer_norm_eps": 1e-5, "mlm_transform": False, "pooler": False}
)
"""BertConfig changes that make BERT GPT's network without the causal mask: GPT-2's layout (no embedding
LayerNorm, pre-LN blocks with residual-scaled init, a final LayerNorm), its tanh GELU and epsilon, and
its head (the tied decoder, here with a bias, no transform); NSP reads h_[CLS] (no pooler). Only the
objective, the attention mask, the segment embedding and the decoder's bias remain BERT's own."""


@dataclass(frozen=True)
class Variant:
    """A pre-training recipe: ``family`` (which network and data reader), ``config`` changes to the
    family's config, the ``objective`` (a key of ``objectives.PRETRAINING_TERMS``), BERT's masking rate
    (``None``: the run's), whether two neighbours may both be masked, masked-LM target weights by word,
    a multiple of the run's steps, and what it is ``about`` in one line."""

    family: ModelName
    objective: str
    about: str
    config: Mapping[str, Any] = field(default_factory=dict)
    mlm_probability: float | None = None
    mask_adjacent: bool = True  # False: never mask two neighbours (data.pretraining.PretrainData)
    target_words: Mapping[str, int] = field(default_factory=dict)  # word -> its weight as a masked-LM target
    steps_scale: int = 1  # pre-training steps: the run's times this

    def configure(self, config: ModelConfig) -> ModelConfig:
        """``config`` (of this family) with this variant's changes."""
        return replace(config, **self.config) if self.config else config


VARIANTS: dict[str, Variant] = {
    "elmo": Variant("elmo", "elmo", "ELMo: forward + backward LSTM language models"),
    "gpt": Variant("gpt", "gpt", "GPT: left-to-right LM (the paper's 'LTR & No NSP')"),
    "bert": Variant("bert", "bert", "BERT: masked LM + NSP on GPT's network, no causal mask", CONTROLLED_BERT),
    "bert-no-nsp": Variant("bert", "mlm", "BERT without next-sentence prediction ('No NSP')", CONTROLLED_BERT),
    "bert-mask15": Variant("bert", "bert", "BERT masking 15% of tokens, the paper's rate", CONTROLLED_BERT, 0.15),
    "bert-post-ln": Variant("bert", "bert", "the paper's BERT: post-LN, erf GELU, MLM transform, pooler"),
    "bert-joint": Variant(
        "bert",
        "bert",
        "BERT designed for the joint cue: untied decoder, no masked neighbours, and/but x10, 5x steps",
        {**CONTROLLED_BERT, "tie_decoder": False},
        mask_adjacent=False,
        target_words={"and": 10, "but": 10},
        steps_scale=5,
    ),
}
"""The pre-training recipes of the head-to-head (``bertcourse.experiments.setup.ROWS`` says how each is fine-tuned)."""
