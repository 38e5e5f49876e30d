"""What an ONNX file says about itself (metadata, classes, input size), read without onnxruntime.

The server registers models (``trivue models publish``) but runs none, so it must not need
onnxruntime, numpy or the ``onnx`` package. An ONNX file is a protobuf ``ModelProto``; its
metadata are ``metadata_props`` (field 14: ``{key: 1, value: 2}`` strings). Reading the top-level
fields is enough to tell a model from a corrupt or foreign file: a model has an IR version
(field 1) and a graph (field 7), and every field must end inside the file.

``parse_model_file`` checks what a fleet needs to know before a truck downloads the file: the class
names (``names``), the input size (``imgsz``), the model's name and version (``trivue_name``,
``trivue_version``) and its validation metrics (``trivue_metrics``), the same keys
``vision.model.read_meta`` reads, and that the graph's first output is a detection head for those
classes, as ``vision.model.read_meta`` requires: a model whose names do not match its head would
otherwise be refused only by the canary truck, after a rollout began.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

_IR_VERSION, _GRAPH, _METADATA = 1, 7, 14
# GraphProto.output, ValueInfoProto.type, TypeProto.tensor_type, Tensor.shape, TensorShapeProto.dim,
# Dimension.dim_value / dim_param (onnx.proto3).
_GRAPH_OUTPUT, _VALUE_TYPE, _TENSOR_TYPE, _TENSOR_SHAPE, _SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 12, 2, 1, 2, 1, 1, 2
END_TO_END_COLUMNS = 6  # (1, K, 6): boxes after NMS (YOLO26, nms=True exports), any number of classes
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
    output: tuple[int | str, ...] = ()  # the first output's shape; a name for a symbolic dimension


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


def _sub(data: bytes, number: int) -> Iterator[bytes]:
    """The length-delimited values of field ``number`` of a message (its sub-messages)."""
    for n, wire, start, end in fields(data):
        if n == number and wire == 2:
            yield data[start:end]


def output_shape(data: bytes) -> tuple[int | str, ...]:
    """The declared shape of the graph's first output (``()`` when none is declared); a symbolic
    dimension is its name. OnnxMetaError when the graph is corrupt."""
    try:
        for graph in _sub(data, _GRAPH):
            for value in _sub(graph, _GRAPH_OUTPUT):
                dims: list[int | str] = []
                for kind in _sub(value, _VALUE_TYPE):
                    for tensor in _sub(kind, _TENSOR_TYPE):
                        for shape in _sub(tensor, _TENSOR_SHAPE):
                            for dim in _sub(shape, _SHAPE_DIM):
                                dims.append(_dimension(dim))
                return tuple(dims)
    except OnnxMetaError as error:
        raise OnnxMetaError(f"not an ONNX model (corrupt graph: {error})") from None
    return ()


def _dimension(dim: bytes) -> int | str:
    for number, wire, start, end in fields(dim):
        if number == _DIM_VALUE and wire == 0:
            return _varint(dim, start)[0]
        if number == _DIM_PARAM and wire == 2:
            return dim[start:end].decode("utf-8", "replace")
    return "?"


def check_head(names: tuple[str, ...], output: tuple[int | str, ...]) -> None:
    """The rule of ``vision.model.read_meta``: a raw YOLOv8 head is (1, 4 + classes, N), an
    end-to-end one (1, K, 6); anything else is refused with one line that says what was expected."""
    if len(output) == 3 and (output[1] == 4 + len(names) or output[2] == END_TO_END_COLUMNS):
        return
    shown = "(" + ", ".join(str(d) for d in output) + ")" if output else "not declared"
    raise OnnxMetaError(f"output shape {shown} is not a detection head for the {len(names)} classes of its "
                        f"metadata 'names' (expected (1, {4 + len(names)}, N), or (1, K, 6) for an end-to-end "
                        "model): the class list does not match the model")


def parse_model_file(path: Path, shown: Path | None = None) -> ModelFacts:
    """``facts`` of an ONNX file on disk; OnnxMetaError names the file and the reason. ``shown``: the
    file to name instead (its stem is the default model name), when ``path`` is a temporary copy."""
    path = Path(path)
    shown = Path(shown) if shown is not None else path
    try:
        data = path.read_bytes()
        found = facts(read_metadata(data), shown.stem)
        output = output_shape(data)
        check_head(found.names, output)
        return replace(found, output=output)
    except OSError as error:
        raise OnnxMetaError(f"{shown}: cannot read ({error.strerror or error})") from None
    except OnnxMetaError as error:
        raise OnnxMetaError(f"{shown}: {error}") from None


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
