"""The files of ``models.dir``: what the model updater deletes after a swap or a refusal, and what it keeps."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge.config import load_settings
from edge.model_update import ModelRefused, ModelUpdater, RunningModel
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream


def model_file(folder: Path, name: str | None, content: bytes) -> RunningModel:
    """A model file (named by its SHA-256 unless ``name``) and the RunningModel of it."""
    sha = hashlib.sha256(content).hexdigest()
    path = folder / (name or f"{sha}.onnx")
    path.write_bytes(content)
    return RunningModel(SimpleNamespace(names=("bag",)), ModelInfo(name="trivue-waste", version=sha[:6]), sha, path)


def updater(folder: Path, running: RunningModel) -> ModelUpdater:
    settings = load_settings(None, {"truck_id": "benne-07", "source": "x", "models": {"dir": str(folder)}},
                             environ={})
    return ModelUpdater(settings, SortingRules.load(), lambda: Stream.recyclables, lambda _path: None, running,
                        lambda _model: None, lambda: None)


def test_the_model_the_truck_starts_with_is_never_deleted(tmp_path: Path) -> None:
    """``model:`` may point into ``models.dir`` (/var/lib/trivue/edge-models/trivue-waste-int8.onnx,
    its FP32 sibling beside it for the start-up self-check). Before, the second swap deleted both:
    only files named by a SHA-256 were kept, and the truck could not start again after its next
    reboot (``model:`` missing)."""
    folder = tmp_path / "edge-models"
    folder.mkdir()
    started = model_file(folder, "trivue-waste-int8.onnx", b"int8")
    sibling = folder / "trivue-waste.onnx"
    sibling.write_bytes(b"fp32")
    models = updater(folder, started)
    first = model_file(folder, None, b"first")
    models.install(first)
    second = model_file(folder, None, b"second")
    models.install(second)  # the started model is no longer the previous one
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(["trivue-waste-int8.onnx", "trivue-waste.onnx", first.path.name, second.path.name]), kept
    # Downloads older than the previous model still go: only files the updater named by their hash.
    third = model_file(folder, None, b"third")
    models.install(third)
    assert not first.path.exists() and second.path.exists() and third.path.exists() and started.path.exists()


def test_a_model_from_the_server_names_its_file_in_the_lifts_it_judges(tmp_path: Path) -> None:
    """Wire 1.2: after a swap, lifts carry the SHA-256 of the file the server sent (its INT8 and
    FP32 files share a name and version), through the recorder the install hands it to."""
    from vision.lift import LiftContext, LiftRecorder
    from vision.schema import ModelRef

    folder = tmp_path / "edge-models"
    folder.mkdir()
    started = model_file(folder, "trivue-waste.onnx", b"fp32")
    sent = model_file(folder, None, b"int8")  # already in models.dir: no download
    meta = SimpleNamespace(name="trivue-waste", version="2")
    settings = load_settings(None, {"truck_id": "benne-07", "source": "x", "models": {"dir": str(folder)},
                                    "selfcheck": {"enabled": False}}, environ={})
    recorder = LiftRecorder(("bag",), SortingRules.load(), started.info, 1)
    models = ModelUpdater(settings, SortingRules.load(), lambda: Stream.recyclables,
                          lambda _path: SimpleNamespace(names=("bag",), meta=meta), started,
                          lambda model: setattr(recorder, "model", model.info), lambda: None)
    running = models.prepare(ModelRef(sha256=sent.sha256 or "", name="trivue-waste", version="2"))
    models.install(running)
    now = datetime.now(UTC)
    recorder.begin(now, Stream.recyclables)
    event = recorder.finish(now, LiftContext("benne-07", 1)).event
    assert (event.model.name, event.model.version, event.model.sha256) == ("trivue-waste", "2", sent.sha256)


def test_downloads_cut_short_by_a_crash_are_removed_at_start_up(tmp_path: Path) -> None:
    """A power cut or a crash in the middle of a download left ``<sha256>.onnx.part``: nothing ever
    deleted it (the prune looks at ``.onnx`` files), and a truck's disk filled up slowly, one
    half model (up to models.max_mb) per cut. Files the updater did not name stay."""
    folder = tmp_path / "edge-models"
    folder.mkdir()
    started = model_file(folder, "trivue-waste-int8.onnx", b"int8")
    stale = [folder / f"{'a' * 64}.onnx.part", folder / f"{'b' * 64}.onnx.part"]
    for path in stale:
        path.write_bytes(b"half a model")
    mine = folder / "notes.onnx.part"  # not a name download() gives
    mine.write_bytes(b"x")
    updater(folder, started)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.onnx.part", "trivue-waste-int8.onnx"]


def test_the_model_the_truck_started_with_comes_back_without_a_download(tmp_path: Path) -> None:
    """Two swaps later (a canary given b, then c), a rollback asks the truck for the model it started
    with, the fleet's model. The updater looked for it among the running and previous models only,
    then downloaded it: a refusal when the server has no such file (a model shipped with the truck,
    never published), and the truck kept the model being rolled back. Its file is still there
    (``model:``, never deleted), checked by its hash: a file replaced since is downloaded."""
    from vision.schema import ModelRef

    folder = tmp_path / "edge-models"
    folder.mkdir()
    started = model_file(tmp_path, "trivue-waste.onnx", b"shipped")
    meta = SimpleNamespace(name="trivue-waste", version=started.info.version)
    settings = load_settings(None, {"truck_id": "benne-07", "source": "x", "models": {"dir": str(folder)},
                                    "selfcheck": {"enabled": False}}, environ={})  # no models.server
    built: list[Path] = []
    models = ModelUpdater(settings, SortingRules.load(), lambda: Stream.recyclables,
                          lambda path: built.append(path) or SimpleNamespace(names=("bag",), meta=meta), started,
                          lambda _model: None, lambda: None)
    for content in (b"b", b"c"):
        models.install(model_file(folder, None, content))
    back = models.prepare(ModelRef(sha256=started.sha256 or "", name="trivue-waste", version=meta.version))
    assert back.path == started.path and built == [started.path] and back.sha256 == started.sha256
    started.path.write_bytes(b"replaced by an upgrade")  # another file now: not the model asked for
    with pytest.raises(ModelRefused, match=r"download impossible: models\.server is not set"):
        models.prepare(ModelRef(sha256=started.sha256 or "", name="trivue-waste", version=meta.version))
