"""Plain data across the kernel boundary: what a query may send and what an answer may bring back.

An answer (a learner function's return value) may hold only exact ``torch.Tensor`` objects (no
subclasses, no ``nn.Parameter``), ``bool``, ``int``, ``float``, ``str``, ``None``, and lists, tuples
and dicts of those. A query may also hold three grader-built objects that exercises need:

- :class:`Seed` becomes a fresh ``torch.Generator`` seeded with it;
- a course model (``GPT``, ``BertModel``, ``ELMo``, ...; :data:`MODEL_CLASSES`) travels as its class
  name, its config dict and its state dict, and is rebuilt in eval mode on the other side;
- :class:`ModelFunction` is a callable built from such a model by a function that an exercise module
  registers in its ``MODEL_FUNCTIONS`` dict (e.g. "embeddings (T, D) -> representations (T, H)").

Everything is one safetensors blob: the tensors, plus a JSON tree in the header's metadata that says
where each goes. Nothing is ever pickled, and :func:`loads` refuses anything malformed with
:class:`CodecError`, so the grader can read what a submission's kernel wrote without trusting it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

__all__ = ["MODEL_CLASSES", "CodecError", "ModelFunction", "Seed", "dumps", "loads", "plain_copy"]

MAX_NODES = 200_000  # values in one blob (tensors count one each)
MAX_DEPTH = 32
MAX_STRING = 20_000  # characters of one string


class CodecError(ValueError):
    """A value that cannot cross the boundary (an unsupported type), or a blob that is not one of ours."""


@dataclass(frozen=True)
class Seed:
    """Stands for ``torch.Generator().manual_seed(seed)``: each call of the learner's function gets a fresh one."""

    seed: int


@dataclass(frozen=True)
class ModelFunction:
    """Stands for ``MODEL_FUNCTIONS[name](model)`` of the exercise module ``bertcourse.grading.<module>``."""

    module: str  # "model_functions" (or an exercise module with a MODEL_FUNCTIONS dict)
    name: str  # a key of that module's MODEL_FUNCTIONS dict
    model: nn.Module


def _model_classes() -> dict[str, type[nn.Module]]:
    import bertcourse

    names = ["ELMo", "GPT", "BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification"]
    return {name: getattr(bertcourse, name) for name in [*names, "BertForTokenClassification"]}


MODEL_CLASSES = ("ELMo", "GPT", "BertModel", "BertForMaskedLM", "BertForPreTraining",
                 "BertForSequenceClassification", "BertForTokenClassification")  # fmt: skip
"""The course models a query may carry (rebuilt from config + safetensors state on the other side)."""


class _Encoder:
    def __init__(self, allow_objects: bool) -> None:
        self.allow_objects = allow_objects
        self.tensors: dict[str, torch.Tensor] = {}
        self.nodes = 0

    def tensor(self, t: torch.Tensor) -> str:
        key = f"t{len(self.tensors)}"
        self.tensors[key] = t.detach().to("cpu").contiguous().clone()  # clone: safetensors refuses shared memory
        return key

    def encode(self, value: Any, where: str, depth: int = 0) -> Any:
        try:
            return self._encode(value, where, depth)
        except CodecError:
            raise
        except Exception as exc:  # any other failure on an odd value is an unsupported value, for this call only
            raise CodecError(f"{where}: an unsupported value ({type(exc).__name__}: {str(exc)[:100]})") from exc

    def _encode(self, value: Any, where: str, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise CodecError(f"{where}: too large or too deeply nested")
        if value is None:
            return ["n"]
        if type(value) is torch.Tensor:
            if value.is_sparse or value.is_quantized or value.is_complex() or value.is_meta:
                raise CodecError(f"{where}: a {value.layout}/{value.dtype} tensor; return a dense real tensor")
            return ["t", self.tensor(value)]
        if isinstance(value, torch.Tensor):
            raise CodecError(f"{where}: a {type(value).__name__} (a tensor subclass); return a plain torch.Tensor")
        if isinstance(value, bool):
            return ["b", bool(value)]
        if isinstance(value, numbers.Integral):
            if not -(2**63) <= int(value) < 2**63:
                raise CodecError(f"{where}: an integer beyond 64 bits")
            return ["i", str(int(value))]
        if isinstance(value, numbers.Real):
            return ["f", float(value).hex()]
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise CodecError(f"{where}: a string of {len(value)} characters")
            return ["s", str(value)]
        if isinstance(value, (list, tuple)):
            tag = "u" if isinstance(value, tuple) else "l"
            return [tag, [self.encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]]
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int, bool)) or k is None:
                    raise CodecError(f"{where}: a dict key of type {type(k).__name__}; use str or int keys")
                items.append([self.encode(k, where, depth + 1), self.encode(v, f"{where}[{k!r:.40}]", depth + 1)])
            return ["d", items]
        if self.allow_objects:
            return self.encode_object(value, where, depth)
        raise CodecError(f"{where}: a {type(value).__module__}.{type(value).__name__}, which the grader cannot read")

    def encode_object(self, value: Any, where: str, depth: int) -> Any:
        if isinstance(value, Seed):
            return ["g", str(int(value.seed))]
        if isinstance(value, ModelFunction):
            return ["c", value.module, value.name, self.encode_object(value.model, where, depth + 1)]
        if type(value).__name__ in MODEL_CLASSES and type(value) is _model_classes()[type(value).__name__]:
            config = dataclasses.asdict(value.config)
            state = {name: self.tensor(t) for name, t in value.state_dict().items()}
            return ["m", type(value).__name__, json.dumps(config), state]
        raise CodecError(f"{where}: a {type(value).__name__} cannot be sent to a kernel")


class _Decoder:
    def __init__(self, tensors: dict[str, torch.Tensor], allow_objects: bool) -> None:
        self.tensors, self.allow_objects, self.nodes = tensors, allow_objects, 0

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise CodecError("too large or too deeply nested")
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise CodecError(f"malformed node {node!r:.80}")
        tag, rest = node[0], node[1:]
        if tag == "n" and not rest:
            return None
        if tag == "t" and len(rest) == 1 and isinstance(rest[0], str) and rest[0] in self.tensors:
            return self.tensors[rest[0]].clone()
        if tag == "b" and len(rest) == 1 and isinstance(rest[0], bool):
            return rest[0]
        if tag == "i" and len(rest) == 1 and isinstance(rest[0], str) and re.fullmatch(r"-?\d{1,400}", rest[0]):
            return int(rest[0])
        if tag == "f" and len(rest) == 1 and isinstance(rest[0], str) and len(rest[0]) < 40:
            try:
                return float.fromhex(rest[0])
            except (ValueError, OverflowError) as exc:
                raise CodecError(f"malformed float {rest[0]!r}") from exc
        if tag == "s" and len(rest) == 1 and isinstance(rest[0], str) and len(rest[0]) <= MAX_STRING:
            return rest[0]
        if tag in "lu" and len(tag) == 1 and len(rest) == 1 and isinstance(rest[0], list):
            items = [self.decode(v, depth + 1) for v in rest[0]]
            return tuple(items) if tag == "u" else items
        if tag == "d" and len(rest) == 1 and isinstance(rest[0], list):
            out = {}
            for item in rest[0]:
                if not isinstance(item, list) or len(item) != 2:
                    raise CodecError("malformed dict item")
                key = self.decode(item[0], depth + 1)
                if not isinstance(key, (str, int)):
                    raise CodecError("malformed dict key")
                out[key] = self.decode(item[1], depth + 1)
            return out
        if self.allow_objects:
            return self.decode_object(tag, rest, depth)
        raise CodecError(f"unknown node {tag!r:.20}")

    def decode_object(self, tag: str, rest: list[Any], depth: int) -> Any:
        if tag == "g" and len(rest) == 1 and isinstance(rest[0], str):
            return torch.Generator().manual_seed(int(rest[0]))
        if tag == "m" and len(rest) == 3 and rest[0] in MODEL_CLASSES:
            cls = _model_classes()[rest[0]]
            config = cls.config_class(**json.loads(rest[1]))
            state = {name: self.tensors[key].clone() for name, key in rest[2].items()}
            kwargs = {}
            if rest[0] == "BertModel":
                kwargs["add_pooling_layer"] = any(name.startswith("pooler.") for name in state)
            model = cls(config, **kwargs)
            model.load_state_dict(state, strict=True)
            return model.eval()
        if tag == "c" and len(rest) == 3 and re.fullmatch(r"ex\d\d_\w+|model_functions", str(rest[0])):
            module = importlib.import_module(f"bertcourse.grading.{rest[0]}")
            build: Callable[[nn.Module], Callable[..., Any]] = module.MODEL_FUNCTIONS[rest[1]]
            return build(self.decode_object(rest[2][0], rest[2][1:], depth + 1))
        raise CodecError(f"unknown object {tag!r:.20}")


def dumps(value: Any, allow_objects: bool = False, where: str = "the value") -> bytes:
    """Encode ``value`` as one safetensors blob; :class:`CodecError` names the first unsupported part."""
    encoder = _Encoder(allow_objects)
    tree = encoder.encode(value, where)
    return st_save(encoder.tensors, metadata={"tree": json.dumps(tree, allow_nan=False)})


def loads(blob: bytes, allow_objects: bool = False) -> Any:
    """Decode a blob written by :func:`dumps`; anything else raises :class:`CodecError`."""
    if len(blob) < 8:
        raise CodecError("not a blob: too short")
    size = int.from_bytes(blob[:8], "little")
    if size > len(blob) - 8:
        raise CodecError("not a blob: bad header size")
    try:
        header = json.loads(blob[8 : 8 + size])
        tree = json.loads(header["__metadata__"]["tree"], parse_constant=_refuse_constant)
        tensors = st_load(blob) if len(header) > 1 else {}
    except CodecError:
        raise
    except Exception as exc:  # malformed JSON, missing keys, a safetensors error, a recursion limit
        raise CodecError(f"not a blob: {type(exc).__name__}: {str(exc)[:200]}") from exc
    try:
        return _Decoder(tensors, allow_objects).decode(tree)
    except CodecError:
        raise
    except Exception as exc:  # a model config or state that does not fit: still the blob's fault
        raise CodecError(f"cannot rebuild the value: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _refuse_constant(name: str) -> float:
    raise CodecError(f"non-standard JSON constant {name}")


def plain_copy(value: Any, allow_objects: bool = False, where: str = "the value") -> Any:
    """``loads(dumps(value))``: what the other side of the boundary would see (fresh tensors, rebuilt objects)."""
    try:
        return loads(dumps(value, allow_objects=allow_objects, where=where), allow_objects=allow_objects)
    except CodecError:
        raise
    except Exception as exc:  # e.g. a dtype safetensors cannot store: unsupported, for this value only
        raise CodecError(f"{where}: an unsupported value ({type(exc).__name__}: {str(exc)[:100]})") from exc


def is_finite_number(x: object) -> bool:
    """A real number that is not NaN or infinite (bools excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
