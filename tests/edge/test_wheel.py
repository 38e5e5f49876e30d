"""A truck is installed from the wheel (docs/edge.md, Running it), not from a checkout: what the agent
reads beside its code (the shipped models, the calibration photos of the INT8 self-check, the rules,
the example settings) must be in the wheel, and found there."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from base.paths import REPO_ROOT
from edge.config import load_settings

MAX_WHEEL_BYTES = 40 * 2**20  # the code and samples ~3 MB, the FP32 and INT8 models ~16 MB
WANTED = ["vision/models/trivue-waste-int8.onnx", "vision/models/trivue-waste.onnx", "vision/models/trivue-waste.md",
          "vision/rules_fr.yaml", "vision/rules_coco.yaml", "vision/calibration/ATTRIBUTION.md",
          "edge/truck.example.yaml"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the files git knows (the build writes build/ beside its sources)."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the sources")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in filter(None, listed):
        source, target = REPO_ROOT / name, src / name
        if source.is_symlink() or source.is_file():  # deleted but not yet staged: left out
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)  # vision/models stays a link, as in git
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=240)
    (built,) = out.glob("trivue-*.whl")
    return built


def test_the_wheel_carries_what_the_truck_reads_beside_its_code(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in WANTED if name not in names] == []
    assert len([n for n in names if n.startswith("vision/calibration/") and n.endswith(".jpg")]) == 8
    assert not [n for n in names if n.startswith("models/")]  # no top-level folder of that name in site-packages
    assert wheel.stat().st_size < MAX_WHEEL_BYTES


def test_an_installed_wheel_finds_its_model_photos_rules_and_example(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=240)
    probe = (
        "import json; from vision.model import default_model_path; from vision.selfcheck import calibration_photos, "
        "fp32_sibling; from vision.rules import DEFAULT_RULES, COCO_RULES; import edge.cli as cli; "
        "m = default_model_path(quantised=True); print(json.dumps({'model': str(m), 'fp32': str(fp32_sibling(m)), "
        "'photos': [str(p) for p in calibration_photos()], 'rules': [str(DEFAULT_RULES), str(COCO_RULES)], "
        "'example': str(cli.EXAMPLE)}))")
    env = {**os.environ, "PYTHONPATH": str(site), "TRIVUE_SHARED": str(tmp_path / "no-shared")}
    env.pop("TRIVUE_MODEL", None)
    found = yaml.safe_load(subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                                          capture_output=True, text=True, timeout=120).stdout)
    paths = [found["model"], found["fp32"], *found["photos"], *found["rules"], found["example"]]
    assert Path(found["model"]).name == "trivue-waste-int8.onnx" and len(found["photos"]) == 8
    assert [p for p in paths if not (Path(p).is_file() and Path(p).is_relative_to(site))] == []
    example = subprocess.run([sys.executable, "-m", "trivue", "edge", "--example-config"], cwd=tmp_path, env=env,
                             check=True, capture_output=True, text=True, timeout=120).stdout
    assert example == (REPO_ROOT / "edge" / "truck.example.yaml").read_text(encoding="utf-8")


def test_the_example_settings_write_where_the_systemd_unit_lets_the_agent_write() -> None:
    # ProtectSystem=strict: everything but ReadWritePaths is read-only; an outbox elsewhere stopped start-up
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO_ROOT / "deploy" / "systemd" / "trivue-edge.service")
    writable = Path(unit["Service"]["ReadWritePaths"])
    assert unit["Service"]["StateDirectory"] == writable.name and unit["Service"]["WorkingDirectory"] == str(writable)
    settings = load_settings(REPO_ROOT / "edge" / "truck.example.yaml", environ={})
    written = {"outbox.path": settings.outbox.path, "evidence.dir": settings.evidence.dir,
               "source (burst_delete)": Path(settings.source)}
    assert {k: str(v) for k, v in written.items() if not v.is_relative_to(writable)} == {}


def test_no_model_anywhere_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # An installation without its models (a wheel from before they were packaged, a checkout without
    # them): start-up named a COCO file in a ../shared folder the truck never had.
    from trivue.cli import main

    (tmp_path / "bursts").mkdir()
    monkeypatch.delenv("TRIVUE_MODEL", raising=False)
    for module in ("vision.model", "edge.model_choice"):
        monkeypatch.setattr(f"{module}.MODELS_DIR", tmp_path / "models")
        monkeypatch.setattr(f"{module}.COCO_WEIGHTS", tmp_path / "shared" / "weights" / "coco.onnx")
    config = tmp_path / "truck.yaml"
    config.write_text(yaml.safe_dump({"truck_id": "T", "source": str(tmp_path / "bursts"),
                                      "outbox": {"path": str(tmp_path / "o.sqlite3")},
                                      "evidence": {"dir": str(tmp_path / "ev")}}), encoding="utf-8")
    assert main(["edge", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trivue edge: error: model: none set, and this installation has no model (")
    assert "\n" not in err
    assert "set model: in the settings file, --model or $TRIVUE_MODEL" in err
