"""``bench/model_choice.py``: its ONNX exports stay in its own temporary folder.

Ultralytics writes an export beside the model it was built from; for a model built from a YAML
spec that is a bare file name, so the exports landed in the caller's current folder (a file of the
same name there, ``yolov8n-320.onnx``, was overwritten, then moved away into the temp folder)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from base.paths import REPO_ROOT

CALL = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from model_choice import untrained_export
print(untrained_export("yolov8n", 320, ["bag", "bottle"], Path({out!r})))
"""


def test_an_untrained_export_leaves_the_current_folder_alone(tmp_path: Path) -> None:
    if importlib.util.find_spec("ultralytics") is None:  # not imported here: it writes its settings at import
        pytest.skip("ultralytics is not installed (the training extra)")
    here, out = tmp_path / "here", tmp_path / "out"
    here.mkdir()
    out.mkdir()
    mine = here / "yolov8n-320.onnx"  # the user's own file, of the name Ultralytics picks
    mine.write_bytes(b"not yours")
    done = subprocess.run([sys.executable, "-c", CALL.format(bench=str(REPO_ROOT / "bench"), out=str(out))],
                          capture_output=True, text=True, timeout=300, cwd=here)
    assert done.returncode == 0, done.stderr[-2000:]
    written = Path(done.stdout.strip().splitlines()[-1])
    assert written.parent == out and written.is_file() and written.stat().st_size > 1_000_000
    assert sorted(p.name for p in here.iterdir()) == ["yolov8n-320.onnx"] and mine.read_bytes() == b"not yours"
