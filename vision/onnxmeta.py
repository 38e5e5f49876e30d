"""What an ONNX file says about itself (metadata, classes, input size), read without onnxruntime.

The server registers models (``trivue models publish``) but runs none, so it must not need
onnxruntime, numpy or the ``onnx`` package. An ONNX file is a protobuf ``ModelProto``; its
metadata are ``metadata_props`` (field 14: ``{key: 1, value: 2}`` strings). Reading the top-level
fields is enough to tell a model from a corrupt or foreign file: a model has an IR version
(field 1) and a graph (field 7), and every field must end inside the file.

``parse_model_file`` checks what a fleet needs to know before a truck downloads the file: the class
names (``names``), the input size (``imgsz``), the model's name and version (``trivue_name``,
``trivue_version``) and its validation metrics (``trivue_metrics``), the same keys
``vision.model.read_meta`` reads.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_IR_VERSION, _GRAPH, _METADATA = 1, 7, 14
MAX_CLASSES = 256  # as vision.schema.MAX_CLASSES


class OnnxMetaError(ValueError):
    """A file that is not a usable ONNX detector; the message names the file and the reason."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise OnnxMetaError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """The top-level fields of a protobuf message: (number, wire type, start, end) of each value."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxMetaError("field number 0")
        if wire == 0:
            _, end = _varint(data, at)
        elif wire == 1:
            end = at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            end = at + length
        elif wire == 5:
            end = at + 4
        else:
            raise OnnxMetaError(f"unsupported wire type {wire}")
        if end > len(data):
            raise OnnxMetaError("a field runs past the end of the file")
        yield number, wire, at, end
        at = end


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialised ModelProto; OnnxMetaError when it is not one."""
    seen: set[int] = set()
    meta: dict[str, str] = {}
    try:
        for number, wire, start, end in fields(data):
            seen.add(number)
            if number == _METADATA and wire == 2:
                sub = data[start:end]
                entry = {n: sub[s:e].decode("utf-8", "replace") for n, w, s, e in fields(sub) if w == 2}
                meta[entry.get(1, "")] = entry.get(2, "")
    except OnnxMetaError as error:
        raise OnnxMetaError(f"not an ONNX model (corrupt or truncated: {error})") from None
    if _IR_VERSION not in seen or _GRAPH not in seen:
        raise OnnxMetaError("not an ONNX model (no IR version or no graph)")
    return meta


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the registry records of a model file."""

    name: str
    version: str
    names: tuple[str, ...]
    imgsz: tuple[int, int]
    metrics: dict[str, Any] = field(default_factory=dict)
    quantised: bool = False  # onnxruntime's quantiser marks what it writes (training/export.py INT8 models)


def _literal(meta: dict[str, str], key: str) -> object:
    try:
        return ast.literal_eval(meta[key])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return meta[key]


def facts(meta: dict[str, str], stem: str) -> ModelFacts:
    """Names, input size, name, version and metrics from metadata; OnnxMetaError names what is missing."""
    if meta.get("task", "detect") != "detect":
        raise OnnxMetaError(f"task is {meta['task']!r}, not an object detector")
    if "names" not in meta:
        raise OnnxMetaError("metadata has no 'names' (export it with `trivue train` or Ultralytics)")
    raw = _literal(meta, "names")
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, int) for k in raw) or len(raw) > MAX_CLASSES:
        raise OnnxMetaError(f"metadata 'names' is not an {{id: name}} mapping of 1 to {MAX_CLASSES} classes")
    if sorted(raw) != list(range(len(raw))):
        raise OnnxMetaError(f"metadata 'names' ids are not 0..{len(raw) - 1}")
    names = tuple(str(raw[i]) for i in range(len(raw)))
    size = _literal(meta, "imgsz") if "imgsz" in meta else None
    if isinstance(size, int):
        size = [size, size]
    if not isinstance(size, list | tuple) or len(size) != 2 or not all(isinstance(v, int) and 0 < v <= 8192
                                                                         for v in size):
        raise OnnxMetaError(f"metadata 'imgsz' is not an input size (got {meta.get('imgsz')!r})")
    try:
        metrics = json.loads(meta.get("trivue_metrics", "{}"))
    except ValueError:
        metrics = {}
    return ModelFacts(name=meta.get("trivue_name", stem)[:128], version=meta.get("trivue_version",
                      meta.get("version", "unknown"))[:64], names=names, imgsz=(int(size[0]), int(size[1])),
                      metrics=metrics if isinstance(metrics, dict) else {},
                      quantised=meta.get("onnx.infer") == "onnxruntime.quant" or "onnx.quant.pre_process" in meta)


def parse_model_file(path: Path) -> ModelFacts:
    """``facts`` of an ONNX file on disk; OnnxMetaError names the file and the reason."""
    path = Path(path)
    try:
        data = path.read_bytes()
        return facts(read_metadata(data), path.stem)
    except OSError as error:
        raise OnnxMetaError(f"{path}: cannot read ({error.strerror or error})") from None
    except OnnxMetaError as error:
        raise OnnxMetaError(f"{path}: {error}") from None


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string_field(number: int, text: str) -> bytes:
    raw = text.encode()
    return _encode_varint(number << 3 | 2) + _encode_varint(len(raw)) + raw


def with_metadata(data: bytes, updates: dict[str, str]) -> bytes:
    """The same model (graph and weights byte for byte) with ``updates`` merged into its metadata.

    Derives a model deterministically, e.g. the same weights under another version or class names
    (the fleet tests' second model); the result is still a model onnxruntime loads.
    """
    meta = {**read_metadata(data), **updates}
    kept, at = bytearray(), 0
    for number, _wire, _start, end in fields(data):
        if number != _METADATA:
            kept += data[at:end]  # the whole field: key, length prefix and value
        at = end
    return bytes(kept) + b"".join(_entry(key, value) for key, value in meta.items())


def _entry(key: str, value: str) -> bytes:
    body = _string_field(1, key) + _string_field(2, value)
    return _encode_varint(_METADATA << 3 | 2) + _encode_varint(len(body)) + body
