"""Trivue works offline: importing the detector and the training modules reaches no network.

Each check runs in a fresh interpreter with the offline variables removed, as on a machine where
nobody set them. A ``sitecustomize`` records every non-loopback DNS lookup and connect made
through Python's socket module (Ultralytics' online probe at import); strace, where present, also
sees those made by C libraries (onnxruntime's telemetry thread, about 9 s after it loads).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
OFFLINE_VARIABLES = ("ORT_DISABLE_TELEMETRY", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR")

GUARD = '''
import os, socket
LOG = os.environ["NET_GUARD_LOG"]
def _outside(address):
    host = address[0] if isinstance(address, tuple) else address
    host = host.decode() if isinstance(host, bytes) else str(host)
    return not (host.startswith("127.") or host in ("::1", "localhost", ""))
def _record(what, address):
    with open(LOG, "a") as handle:
        handle.write(f"{what} {address!r}\\n")
_getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *args, **kwargs):
    if _outside((host,)):
        _record("getaddrinfo", host)
        raise socket.gaierror(-3, "no network in this test")
    return _getaddrinfo(host, *args, **kwargs)
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and _outside(address):
        _record("connect", address)
        raise OSError(101, "no network in this test")
    return _connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
'''


def run_guarded(code: str, tmp_path: Path, strace: bool = False) -> tuple[str, str]:
    """Run ``code``; return (Python-level attempts, strace's non-loopback connects)."""
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    log, trace = tmp_path / "net.log", tmp_path / "strace.txt"
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    env.update(HOME=str(tmp_path / "home"), NET_GUARD_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "guard"), str(ROOT)]))
    command = [sys.executable, "-c", code]
    if strace:
        command = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *command]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    outside = ""
    if trace.exists():
        outside = "\n".join(line for line in trace.read_text().splitlines()
                            if "AF_INET" in line and "127.0.0.1" not in line and '"::1"' not in line)
    return (log.read_text() if log.exists() else ""), outside


def test_importing_every_training_and_vision_module_reaches_no_network(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    modules = sorted(f"{p.parent.name}.{p.stem}" for package in ("training", "vision")
                     for p in (ROOT / package).glob("*.py") if p.stem != "__init__")
    attempts, _ = run_guarded("import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules),
                              tmp_path)
    # Ultralytics resolves one.one.one.one and dns.google at import unless YOLO_OFFLINE is set
    assert attempts == ""


def test_the_detector_sets_onnxruntime_telemetry_off_before_loading_it(tmp_path: Path) -> None:
    # the variable is read when the shared library loads; set later it changes nothing
    code = ("import os, sys\nassert 'onnxruntime' not in sys.modules\nimport vision.model\n"
            "print(os.environ.get('ORT_DISABLE_TELEMETRY'))")
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "1"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed: C-level connects unseen")
def test_a_loaded_detector_and_ultralytics_send_nothing_out(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    # onnxruntime's telemetry thread looks up mobile.events.data.microsoft.com ~9 s after loading
    code = "import time\nimport vision.model\nimport training.partial\ntime.sleep(12)\n"
    attempts, outside = run_guarded(code, tmp_path, strace=True)
    assert attempts == ""
    assert outside == "", f"connects outside 127.0.0.1:\n{outside}"
