"""The starting checkpoint a run builds (``RUN/init/``) is whole, and is the one asked for.

A run killed while ``torch.save`` wrote it (the first minute of a run: nothing to ``--resume``
yet) left a truncated file that the next ``trivue train`` took as built and failed to load. A warm
start's checkpoint was reused by file name alone: a run folder trained again after the model in
service was replaced (same file name), or at another ``--imgsz`` (BatchNorm statistics are measured
at the training size), started from the old one without a word.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from training.train import TrainConfig, warm_start


def test_a_kill_while_the_init_checkpoint_is_written_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("ultralytics")
    import torch

    from training.coco_init import save_checkpoint

    def killed(obj: object, path: object) -> None:
        Path(str(path)).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # stands for the SIGKILL

    monkeypatch.setattr(torch, "save", killed)
    out = tmp_path / "run" / "init" / "yolov8n-coco.pt"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(SimpleNamespace(), out)
    assert not out.exists(), "a truncated checkpoint would be taken as built by the next run"


def test_a_warm_start_is_rebuilt_for_another_model_or_size(tmp_path: Path, monkeypatch) -> None:
    built: list[tuple[bytes, int]] = []

    def build(onnx: Path, out: Path, images: list[Path], imgsz: int = 320, real_stats: bool = True) -> Path:
        built.append((onnx.read_bytes(), imgsz))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"checkpoint")
        return out

    pytest.importorskip("ultralytics")
    monkeypatch.setattr("training.coco_init.build_coco_init", build)
    monkeypatch.setattr("training.train.stats_images", lambda data_yaml: [])
    model = tmp_path / "models" / "trivue-waste.onnx"
    model.parent.mkdir()
    model.write_bytes(b"model in service in December")
    config = TrainConfig(data=tmp_path / "mapping.yaml", run_dir=tmp_path / "run", init=str(model))
    first = warm_start(config, model, tmp_path / "data.yaml")
    assert warm_start(config, model, tmp_path / "data.yaml") == first and len(built) == 1  # built once
    model.write_bytes(b"model in service in January")  # promoted: same file name, other weights
    warm_start(config, model, tmp_path / "data.yaml")
    assert built[-1] == (b"model in service in January", 320)
    warm_start(replace(config, imgsz=416), model, tmp_path / "data.yaml")
    assert built[-1] == (b"model in service in January", 416) and len(built) == 3
