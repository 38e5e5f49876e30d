"""Pipelined detection (``workers`` > 1) changes nothing but speed: same detections in the same
order into the tracker, same lift events and photos as one frame at a time; no thread outlives it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from base.paths import MODELS_DIR
from edge.app import Agent
from edge.config import load_settings
from tests.edge.helpers import make_bursts
from vision.detection import Detections
from vision.model import QUANTISED_MODEL_NAME
from vision.schema import parse_lift_event


@pytest.fixture(scope="module")
def hopper_photos(shared_dir: Path) -> list[Path]:
    photos = sorted((shared_dir / "datasets" / "hopper-bags" / "images" / "val").glob("*.jpg"))
    if len(photos) < 24:
        pytest.skip("hopper-bags val photos are absent")
    return photos


@pytest.fixture(scope="module")
def shipped_model() -> Path:
    path = MODELS_DIR / QUANTISED_MODEL_NAME
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def run_loop(tmp_path: Path, bursts: Path, model: Path, workers: int) -> tuple[list[dict[str, Any]], list[bytes],
                                                                               list[tuple]]:
    """One pass of the agent's own loop and frame source; (events, photos, tracker inputs) in order."""
    run = tmp_path / f"workers-{workers}"
    settings = load_settings(None, {
        "truck_id": "T-1", "source": str(bursts), "stream": "recyclables", "model": str(model),
        "workers": workers, "hopper": [[0.05, 0.05], [0.95, 0.05], [0.95, 0.95], [0.05, 0.95]],
        "outbox": {"path": str(run / "outbox.sqlite3")}, "evidence": {"dir": str(run / "evidence")},
        "uplink": {"broker": "mqtt://127.0.0.1:1"}, "gps": {"source": "fixed:47.9029,1.9093"},
    }, environ={})
    agent = Agent.create(settings)
    assert agent.pipeline.workers == workers
    inputs: list[tuple] = []
    update = agent.pipeline.tracker.update

    def recording(detections: Detections) -> Detections:
        inputs.append((detections.xyxy.tobytes(), detections.confidence.tobytes(), detections.class_id.tobytes()))
        return update(detections)

    agent.pipeline.tracker.update = recording  # type: ignore[method-assign]
    try:
        assert agent.pipeline.run(agent.frame_source(once=True)) == 6
        messages = agent.outbox.oldest(limit=100)
    finally:
        agent.close()
    events = []
    for message in messages:
        if message.kind == "lift":  # all but the random id and the fixed GPS's clock reading
            event = parse_lift_event(message.payload)
            dump = event.model_dump(mode="json", exclude={"event_id": True, "evidence": True, "gps": {"fix_at"}})
            events.append(dump | {"photo": event.evidence.sha256 if event.evidence else None})
    photos = [m.payload for m in messages if m.kind == "evidence"]
    return events, photos, inputs


def test_pipelined_loop_gives_the_serial_loop_s_events(tmp_path, hopper_photos, shipped_model) -> None:
    make_bursts(tmp_path / "bursts", hopper_photos, lifts=6, frames=4)
    before = set(threading.enumerate())
    serial = run_loop(tmp_path, tmp_path / "bursts", shipped_model, workers=1)
    for workers in (2, 3):
        events, photos, inputs = run_loop(tmp_path, tmp_path / "bursts", shipped_model, workers)
        assert inputs == serial[2]  # every frame's detections, bit for bit, in frame order
        assert events == serial[0]  # counts, errors, score, frames, times, sequence, photo hash
        assert photos == serial[1]
    assert len(serial[2]) == 24 and sum(e["contaminated"] for e in serial[0]) >= 3  # the check has teeth
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not [t.name for t in leaked if t.name.startswith(("detect", "frame-prefetch"))]
