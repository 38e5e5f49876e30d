"""Publishing models: an ONNX file and its card -> a registry row and a file named by its SHA-256.

The server runs no model, so it reads the ONNX metadata with ``vision.onnxmeta`` (no onnxruntime):
the class names, input size, name, version and validation metrics. The truck checks the rest when
it downloads the file (it loads, its classes have rules, it passes the self-check).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.fleet.models import FleetModel
from vision.onnxmeta import OnnxMetaError, parse_model_file
from vision.rules import RulesError, SortingRules
from vision.schema import ModelRef

SHA256_PATTERN = r"^[0-9a-f]{64}$"
INT8_SUFFIX = "-int8"  # X-int8.onnx shares the card of X.onnx (training/export.py)
MAX_CARD_BYTES = 256 * 1024


class RegistryError(ValueError):
    """A model that cannot be published or found; the message says why."""


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def model_path(data_dir: Path, sha256: str) -> Path:
    return models_dir(data_dir) / f"{sha256}.onnx"


def card_beside(path: Path) -> Path | None:
    """``X.md`` beside ``X.onnx`` (or beside ``X-int8.onnx``), when present."""
    stem = path.stem.removesuffix(INT8_SUFFIX)
    card = path.with_name(f"{stem}.md")
    return card if card.is_file() else None


def _read_card(card: Path | None) -> str | None:
    if card is None:
        return None
    try:
        data = card.read_bytes()
    except OSError as error:
        raise RegistryError(f"{card}: cannot read the model card ({error.strerror or error})") from None
    if len(data) > MAX_CARD_BYTES:
        raise RegistryError(f"{card}: model card over {MAX_CARD_BYTES // 1024} KiB")
    return data.decode("utf-8", "replace")


def _copy_hashed(source: Path, folder: Path) -> tuple[Path, str]:
    """Copy ``source`` to a temporary file in ``folder`` (fsynced), hashing the bytes written; returns
    (temporary path, sha256). Hashing the source and copying it in two reads stored a file changed
    in between (a training run still writing it) under a sha256 its bytes did not have."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary), digest.hexdigest()


def publish(session: Session, data_dir: Path, path: Path, actor: str, card: Path | None = None) -> FleetModel:
    """Register ``path``; RegistryError (nothing changed) for a bad file or a duplicate. The caller commits.

    Everything is read from the copy that is stored (hash, metadata, output shape, size), never from
    the source file again: what trucks download is exactly what was checked and named."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{path}: a folder, not a model file" if path.is_dir() else f"{path}: no such model file")
    try:
        copy, sha = _copy_hashed(path, models_dir(data_dir))
    except OSError as error:
        raise RegistryError(f"{path}: cannot copy the model ({error.strerror or error})") from None
    try:
        row = _register(session, data_dir, path, copy, sha, actor, card)
    finally:
        copy.unlink(missing_ok=True)  # moved into place when registered; removed otherwise
    return row


def _check_readable(path: Path, sha: str, name: str, version: str) -> None:
    """The truck's config names the model as ``ModelRef`` does; a name or version it cannot read would
    have every truck refuse the whole config (its stream too), and no rollout could halt or advance."""
    try:
        ModelRef(sha256=sha, name=name, version=version)
    except ValidationError as error:
        field = str(error.errors()[0]["loc"][0])
        value = name if field == "name" else version
        raise RegistryError(f"refused: {path}: {field} {value!r} is not 1 to {128 if field == 'name' else 64} "
                            f"printable characters (ONNX metadata trivue_{field}): no truck could read its "
                            "config") from None


def _register(session: Session, data_dir: Path, path: Path, copy: Path, sha: str, actor: str,
              card: Path | None) -> FleetModel:
    try:
        facts = parse_model_file(copy, shown=path)  # the copy's temporary name means nothing to the operator
    except OnnxMetaError as error:
        raise RegistryError(f"refused: {error}") from None
    _check_readable(path, sha, facts.name, facts.version)
    if (known := session.get(FleetModel, sha)) is not None:
        raise RegistryError(f"{path} is already published as {known.name} {known.version} (sha256 {sha})")
    same = session.scalar(select(FleetModel).where(FleetModel.name == facts.name, FleetModel.version == facts.version,
                                                   FleetModel.quantised == facts.quantised))
    if same is not None:
        raise RegistryError(f"{facts.name} {facts.version}{' INT8' if facts.quantised else ''} is already published "
                            f"with another file (sha256 {same.sha256}): give the new model its own version (ONNX "
                            "metadata trivue_version)")
    # The card is found beside the source (X.md beside X.onnx), named by the stem the operator gave.
    text = _read_card(card if card is not None else card_beside(path))
    size = copy.stat().st_size
    os.replace(copy, model_path(data_dir, sha))
    row = FleetModel(sha256=sha, name=facts.name, version=facts.version,
                     quantised=facts.quantised, names=list(facts.names), imgsz=list(facts.imgsz),
                     metrics=facts.metrics, card=text, size_bytes=size, published_at=utcnow(), published_by=actor)
    session.add(row)
    audit(session, actor, "model.publish", sha, f"{facts.name} {facts.version}, {len(facts.names)} classes, "
          f"card {'yes' if text else 'no'}")
    return row


def streams_without_rules(names: list[str], rules: SortingRules) -> dict[str, str]:
    """Stream -> why ``rules`` (the server's ``sorting_rules``, the trucks' file) do not cover these classes.

    Trucks with those rules refuse the model on such a stream; a truck may still run another file,
    so publishing only warns. Only the streams of the file: a deployment collects those.
    """
    problems = {}
    for stream in rules.streams:
        try:
            rules.check_model(names, stream)
        except RulesError as error:
            problems[stream.value] = str(error).split(": ", 1)[-1]
    return problems


def find(session: Session, sha: str) -> FleetModel:
    """The published model with this sha256 (or a unique prefix of at least 8 characters)."""
    sha = sha.strip().lower()
    if len(sha) == 64:
        row = session.get(FleetModel, sha)
    elif len(sha) >= 8 and all(c in "0123456789abcdef" for c in sha):
        rows = session.scalars(select(FleetModel).where(FleetModel.sha256.startswith(sha))).all()
        if len(rows) > 1:
            raise RegistryError(f"sha256 prefix {sha} names {len(rows)} models: give more characters")
        row = rows[0] if rows else None
    else:
        raise RegistryError(f"{sha!r} is not a sha256 (64 hex characters, or a prefix of at least 8)")
    if row is None:
        raise RegistryError(f"no published model with sha256 {sha} (see `trivue models list`)")
    return row


def model_json(row: FleetModel, card: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sha256": row.sha256, "name": row.name, "version": row.version, "quantised": row.quantised,
        "names": row.names,
        "imgsz": row.imgsz, "metrics": row.metrics, "size_bytes": row.size_bytes,
        "published_at": row.published_at.isoformat(), "published_by": row.published_by,
        "url": f"/api/models/{row.sha256}.onnx",
    }
    if card:
        body["card"] = row.card
    return body


def model_ref(session: Session, row: FleetModel) -> dict[str, str]:
    """The ``model`` of a TruckConfig (``vision.schema.ModelRef``): an INT8 model names the FP32 model of
    its version as ``reference``, when published, so that the truck runs the INT8 self-check."""
    ref = {"sha256": row.sha256, "name": row.name, "version": row.version}
    if row.quantised:
        fp32 = session.scalar(select(FleetModel.sha256).where(
            FleetModel.name == row.name, FleetModel.version == row.version, FleetModel.quantised.is_(False)))
        if fp32 is not None:
            ref["reference"] = fp32
    return ref
