"""``trivue demo`` as a user runs it: a real process on free ports, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import free_port


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait_for(check: Any, what: str, process: subprocess.Popen[str], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo exited ({process.returncode}) before {what}: {process.stderr.read()[-3000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _as_a_background_job() -> None:
    """Start the demo as `trivue demo &` in a script or `nohup` would: with SIGINT ignored, which
    Python then leaves ignored, so Ctrl-C (SIGINT) stops only a demo that handles it itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_demo(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    environ = {**os.environ, "TRIVUE_PORT": str(port), "TRIVUE_DATA_DIR": str(tmp_path / "data"), **env}
    environ.pop("TRIVUE_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "trivue", "demo", "--trucks", "1", "--history-days", "1",
                                "--speed", "30", *args], cwd=tmp_path, env=environ, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_as_a_background_job)
    return process, f"http://127.0.0.1:{port}"


def stop_demo(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    assert "demo stopped" in err
    return err


def live_lifts(url: str) -> list[dict[str, Any]]:
    """Lifts of the last minutes (the simulated history ends a day ago)."""
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    page = get(f"{url}/api/lifts?truck_id=demo-01&limit=200&since={quote(since)}") or {"items": []}
    return page["items"]


def dark_heartbeat(url: str) -> dict[str, Any] | None:
    for truck in (get(f"{url}/api/trucks") or {"trucks": []})["trucks"]:
        stats = truck.get("stats") or {}
        if truck["truck_id"] == "demo-01" and (stats.get("camera_view") or {}).get("problem") == "dark":
            return stats
    return None


def test_demo_starts_serves_live_trucks_and_stops_on_ctrl_c(tmp_path: Path, shared_dir: Path) -> None:
    from vision.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("no detection model")
    process, url = start_demo(tmp_path)
    try:
        health = wait_for(lambda: get(f"{url}/api/health"), "the API", process, timeout=120)
        assert health["status"] == "ok" and health["dev"] is True and health["broker"] == "connected"
        # Coloured streets from the first minute: the history is still being stored when the first
        # streets appear, and the first few can all be clean (failed once under a full suite's load).
        wait_for(lambda: [s for s in (get(f"{url}/api/streets") or {}).get("streets") or [] if s["contaminated"]],
                 "history with contaminated streets", process, 60)
        edge = wait_for(lambda: [x for x in live_lifts(url) if x["frames"] == 3], "live edge lifts", process, 90)
        assert edge[0]["model"]["name"] != "trivue-simulator"
        assert get(f"{url}/api/me")["household_level"] is True  # the full reminders flow is on show
        trucks = get(f"{url}/api/trucks")["trucks"]
        assert any(t["truck_id"] == "demo-01" and t["status"] == "online" for t in trucks)
        # the truck's own model (INT8, self-checked), and its camera going dark for a while (fleet page)
        stats = wait_for(lambda: dark_heartbeat(url), "demo-01's camera going dark", process, 90)
        assert stats["model_check"]["configured"] == "trivue-waste-int8.onnx", stats["model_check"]
        assert get(f"{url}/api/data-quality")["view_unusable"] >= 40  # the history's dark stretch
    finally:
        err = stop_demo(process)
    assert "INT8 self-check" in " ".join(err.split())
    assert "DEV MODE" in err and "demo / trivue-demo" in err
    assert "Household level ON for the demo" in err  # the demo enables households, and says so
    assert not list((tmp_path / "data").glob("demo-trucks/*/bursts/*.part"))


def test_demo_without_shared_data_uses_the_committed_sample(tmp_path: Path) -> None:
    process, url = start_demo(tmp_path, "--events-only", TRIVUE_SHARED=str(tmp_path / "no-shared"))
    try:
        wait_for(lambda: get(f"{url}/api/health"), "the API", process, timeout=120)
        wait_for(lambda: live_lifts(url), "live lifts", process, 60)
    finally:
        err = stop_demo(process)
    assert "committed extract" in err and "absent" in err


def test_the_banner_speaks_english(capsys: pytest.CaptureFixture[str]) -> None:
    """English as every command (README "Commands"): its first line said « Tableau de bord : »."""
    from types import SimpleNamespace

    from trivue.demo.showcase import Showcase
    from vision.schema import Stream

    shown = SimpleNamespace(url="http://127.0.0.1:8000", broker=SimpleNamespace(url="mqtt://127.0.0.1:1883"),
                            data_dir=Path("trivue-data"), scenario=SimpleNamespace(trucks=["benne-01"]),
                            options=SimpleNamespace(speed=10.0), stream=Stream("recyclables"), notes=[])
    Showcase._banner(shown)  # type: ignore[arg-type]
    banner = " ".join(capsys.readouterr().err.split())
    assert "Dashboard: http://127.0.0.1:8000/" in banner, banner
    assert "Tableau" not in banner


def test_the_demo_trucks_run_the_model_a_truck_runs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """README « The shipped model »: the INT8 model is the truck default. The demo's live trucks ran
    the FP32 file (``default_model_path()``, the evaluation default) and never its self-check."""
    from edge.model_choice import configured_model
    from trivue.demo.showcase import live_model
    from trivue.sim.trucks import edge_settings
    from vision.schema import Stream

    monkeypatch.delenv("TRIVUE_MODEL", raising=False)
    truck = edge_settings("demo-01", Path("unused"), "mqtt://127.0.0.1:1", "trivue", Stream("recyclables"))
    assert live_model(None) == configured_model(truck)
    assert live_model(Path("mine.onnx")) == Path("mine.onnx")  # --model: the user's choice stands
