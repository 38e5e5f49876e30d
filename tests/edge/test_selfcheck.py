"""The truck's INT8 self-check at start-up: keep the shipped INT8 model, fall back from a broken one
to its FP32 sibling, and say so in the published heartbeat."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from edge.app import Agent
from edge.config import ConfigError, load_settings
from tests.edge.helpers import Subscriber, make_bursts, unique_truck
from tests.vision.test_selfcheck import FP32, INT8, broken_int8
from vision.schema import SCHEMA_VERSION, TruckStats


@pytest.fixture(scope="module")
def shipped() -> None:
    if not (FP32.is_file() and INT8.is_file()):
        pytest.skip("the shipped FP32/INT8 pair is absent")


def agent_for(tmp_path: Path, model: Path, broker: str = "mqtt://127.0.0.1:1", **extra: Any) -> Agent:
    (tmp_path / "bursts").mkdir(parents=True, exist_ok=True)
    tree = {"truck_id": unique_truck(), "source": str(tmp_path / "bursts"), "model": str(model),
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "evidence": {"dir": str(tmp_path / "evidence")},
            "uplink": {"broker": broker, "reconnect_max_s": 1}, **extra}
    return Agent.create(load_settings(None, tree, environ={}))


def test_the_shipped_int8_model_passes_and_runs(shipped: None, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "edge.model_choice")
    agent = agent_for(tmp_path, INT8)
    try:
        check = agent.stats().model_check
        assert agent.detector.path == INT8
        assert check is not None and check.status == "passed" and check.running == INT8.name
        assert check.disagreement is not None and check.disagreement <= check.threshold == 0.15
        assert "INT8 self-check passed" in caplog.text
    finally:
        agent.close()


def test_a_broken_int8_model_makes_the_truck_run_fp32_and_say_so(shipped: None, tmp_path: Path, mqtt_broker,
                                                                  litter_val_images,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    broken = broken_int8(FP32, tmp_path)
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    subscriber = None
    agent = agent_for(tmp_path, broken, mqtt_broker.url)
    try:
        assert agent.detector.path == tmp_path / "model.onnx"  # the FP32 sibling runs
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "self-check failed" in r.message]
        assert len(warnings) == 1 and "model.onnx" in warnings[0].message
        # ... and the heartbeat the truck publishes says so
        subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{agent.settings.truck_id}/stats")
        agent.uplink.start()
        assert subscriber.wait_for(lambda: subscriber.on("/stats"), timeout=10)
        stats = TruckStats.model_validate(json.loads(subscriber.on("/stats")[-1]))
    finally:
        agent.close()
        if subscriber is not None:
            subscriber.close()
    check = stats.model_check
    assert check is not None and check.status == "fallback"
    assert (check.configured, check.running, check.photos) == ("model-int8.onnx", "model.onnx", 8)
    assert check.disagreement is not None and check.disagreement > check.threshold


def test_check_disabled_or_not_int8_runs_the_configured_model(shipped: None, tmp_path: Path) -> None:
    broken = broken_int8(FP32, tmp_path)
    agent = agent_for(tmp_path, broken, selfcheck={"enabled": False})
    try:
        assert agent.detector.path == broken and agent.stats().model_check is None
    finally:
        agent.close()
    shutil.copy(FP32, tmp_path / "plain.onnx")  # no -int8 name: nothing to compare with
    agent = agent_for(tmp_path / "other", tmp_path / "plain.onnx")
    try:
        assert agent.stats().model_check is None
    finally:
        agent.close()


def test_an_unreadable_fp32_sibling_skips_the_check_and_says_why(shipped: None, tmp_path: Path) -> None:
    shutil.copy(INT8, tmp_path / "m-int8.onnx")
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    agent = agent_for(tmp_path, tmp_path / "m-int8.onnx")
    try:
        check = agent.stats().model_check
        assert agent.detector.path == tmp_path / "m-int8.onnx"
        assert check is not None and check.status == "skipped" and "m.onnx" in (check.reason or "")
    finally:
        agent.close()


def test_selfcheck_settings_are_strict(shipped: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"selfcheck\.max_disagreemnt: unknown setting"):
        load_settings(None, {"truck_id": "t", "source": ".", "selfcheck": {"max_disagreemnt": 0.1}}, environ={})
    with pytest.raises(ConfigError, match=r"selfcheck\.max_disagreement"):
        load_settings(None, {"truck_id": "t", "source": ".", "selfcheck": {"max_disagreement": 2}}, environ={})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"selfcheck\.photos"):
        agent_for(tmp_path, INT8, selfcheck={"photos": str(empty)})


def test_lifts_name_the_file_that_judged_them_the_fp32_sibling_after_a_fallback(shipped: None, tmp_path: Path,
                                                                                litter_val_images) -> None:
    """Wire 1.2: each lift carries the SHA-256 of the model file running. After a fallback that is
    the FP32 sibling's, not the configured INT8 file's: both share a name and version, and the
    server tells a household which file said its bin was contaminated by this hash alone."""
    from edge.model_update import file_sha256
    from edge.outbox import LIFT
    from vision.schema import parse_lift_event

    broken = broken_int8(FP32, tmp_path)
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    agent = agent_for(tmp_path, broken, uplink={"broker": "mqtt://127.0.0.1:9", "flush_timeout_s": 0.5})
    try:
        agent.run(once=True)  # no broker: the lift stays in the outbox
        rows = agent.outbox.oldest(limit=10)
    finally:
        agent.close()
    events = [parse_lift_event(m.payload) for m in rows if m.kind == LIFT]
    fp32 = file_sha256(tmp_path / "model.onnx")
    assert len(events) == 1 and fp32 != file_sha256(broken)
    assert events[0].model.sha256 == fp32 and events[0].schema_version == SCHEMA_VERSION
