"""The ``trivue`` command as a user runs it: real process, real model, real photos."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from base.paths import REPO_ROOT


def trivue(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trivue", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)


def test_detect_json_one_object_per_image(coco_model: Path, shared_dir: Path, tmp_path: Path) -> None:
    folder = shared_dir / "datasets" / "litter-items" / "images" / "val"
    photo = folder / "7b038fdaf68c.jpg"
    out = trivue("detect", photo, folder / "834f3620c260.jpg", "--model", coco_model, "--json", "--save", tmp_path)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(photo), str(folder / "834f3620c260.jpg")]
    assert records[0]["width"] == 416 and records[0]["height"] == 416
    cup = [d for d in records[0]["detections"] if d["class"] == "cup"]
    assert cup and 0.25 < cup[0]["confidence"] <= 1 and len(cup[0]["box"]) == 4
    annotated = cv2.imread(str(tmp_path / "7b038fdaf68c.jpg"))
    assert annotated is not None and annotated.shape == (416, 416, 3)


def test_detect_table_on_a_folder(coco_model: Path, shared_dir: Path) -> None:
    folder = shared_dir / "datasets" / "litter-items" / "images" / "val"
    out = trivue("detect", folder, "--model", coco_model, "--conf", "0.4")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == len(list(folder.glob("*.jpg")))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detect", "{tmp}/missing.jpg"], "no such file"),
        (["detect", "{tmp}/bad.jpg"], "not a readable image"),
        (["detect", "{tmp}/bad.jpg", "--model", "{tmp}/bad.jpg"], "not a loadable ONNX model"),
        (["detect", "{tmp}/bad.jpg", "--model", "{tmp}/none.onnx"], "model file not found"),
        (["demo", "--stream", "compost"], "is not one of"),
        (["judge", "--stream", "compost"], "is not one of"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str, coco_model: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg")
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "detect" and "--model" not in args:
        args += ["--model", str(coco_model)]
    out = trivue(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_schema_command_prints_the_json_schema() -> None:
    out = trivue("schema")
    assert out.returncode == 0
    assert json.loads(out.stdout)["title"] == "LiftEvent"


@pytest.mark.parametrize("command", [["judge"], ["demo", "--photos"]])
def test_judge_real_photos(tmp_path: Path, shared_dir: Path, command: list[str]) -> None:
    out = trivue(*command, "--limit", "4", "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 photos" in out.stdout
    assert len(list(tmp_path.glob("*.jpg"))) == 4
    # English as every command (README "Commands"): it printed "Photos annotées", "objets vus", "Erreurs"
    assert "Annotated photos:" in out.stdout and "objects seen" in out.stdout, out.stdout
    assert not re.search(r"annotées|objets vus|erreurs? de tri|Erreurs :|modèle|flux ", out.stdout), out.stdout
