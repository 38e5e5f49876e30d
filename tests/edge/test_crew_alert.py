"""The crew alert as the cab hears it: the serial line (buzzer, light) and the cab tablet's topic on a
real broker. The rate limit keeps one recurring item from deafening the crew; it must never hide
another danger."""

from __future__ import annotations

import json
import logging
import os
import select
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from base.paths import MODELS_DIR
from edge.alert import CrewAlert
from edge.app import Agent
from edge.config import EdgeSettings
from edge.lines import LineWriter
from edge.model_update import RunningModel
from tests.conftest import BrokerAddress
from tests.edge.helpers import Meta, ScriptedDetector, Subscriber, make_bursts, unique_truck
from tests.edge.test_agent import BATTERY, settings_for
from vision.model import QUANTISED_MODEL_NAME, Detector
from vision.schema import ModelInfo


def read_lines(master: int, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\r\n") < count:
        ready, _, _ = select.select([master], [], [], 2)
        if not ready:
            break
        data += os.read(master, 200)
    return data.splitlines()


def test_a_gas_cylinder_right_after_a_battery_still_alerts_the_crew(
    pty: tuple[int, str], mqtt_broker: BrokerAddress
) -> None:
    """A battery alerts; the crew stops, takes it out, starts the compactor again. A gas cylinder
    seen seconds later (the same lift or the next bin) was held back by the battery's 30 s limit:
    no buzzer, no message, and the cylinder was compacted."""
    master, path = pty
    truck = unique_truck()
    topic = f"trivue/v1/{truck}/alert"
    cab = Subscriber(mqtt_broker.host, mqtt_broker.port, topic)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{truck}-alert")
    alert = CrewAlert(LineWriter(path, 9600), client, topic, min_interval_s=30)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    try:
        assert alert.fire(truck, ("battery",)) is True
        assert alert.fire(truck, ("battery",)) is False  # the same item tracked again: once
        assert alert.fire(truck, ("gas_cylinder",)) is True  # another danger: always heard
        assert alert.fire(truck, ("battery", "gas_cylinder")) is False
        assert read_lines(master, 2) == [b"ALERT battery", b"ALERT gas_cylinder"]
        assert cab.wait_for(lambda: len(cab.on("/alert")) >= 2, timeout=10)
        assert [json.loads(p)["classes"] for p in cab.on("/alert")] == [["battery"], ["gas_cylinder"]]
        assert (alert.fired, alert.suppressed) == (2, 2)
    finally:
        alert.close()
        cab.close()


def test_an_alert_lists_only_the_classes_not_heard_within_the_interval(pty: tuple[int, str]) -> None:
    master, path = pty
    alert = CrewAlert(LineWriter(path, 9600), None, "t/alert", min_interval_s=60)
    try:
        assert alert.fire("T1", ("battery",)) is True
        assert alert.fire("T1", ("battery", "gas_cylinder")) is True
        assert read_lines(master, 2) == [b"ALERT battery", b"ALERT gas_cylinder"]
    finally:
        alert.close()


def alert_warnings(records: list[logging.LogRecord], needle: str) -> list[str]:
    return [r.getMessage() for r in records if r.levelno == logging.WARNING and needle in r.getMessage()]


def agent_settings(tmp_path: Path, **alert: object) -> EdgeSettings:
    (tmp_path / "bursts").mkdir(exist_ok=True)
    return settings_for(
        tmp_path,
        tmp_path / "bursts",
        "mqtt://127.0.0.1:9",
        unique_truck(),
        alert={"broker": None, **alert},
        models={"dir": str(tmp_path / "models")},
    )


def test_start_up_warns_that_the_shipped_model_cannot_alert_the_crew(tmp_path: Path, caplog) -> None:
    """The shipped trivue-waste has neither battery nor gas_cylinder, the rules' alert classes: the
    crew alert could never sound, and start-up said so only among the info lines."""
    detector = Detector(MODELS_DIR / QUANTISED_MODEL_NAME)
    assert not {"battery", "gas_cylinder"} & set(detector.names)  # as its model card says
    caplog.set_level(logging.INFO)
    agent = Agent.create(agent_settings(tmp_path, serial_port="/dev/null"), detector=detector)
    agent.close()
    [warning] = alert_warnings(caplog.records, "cannot detect")
    assert "battery, gas_cylinder" in warning and "trivue-waste" in warning and "recyclables" in warning


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        (("bottle", "glass", "battery", "bag"), "gas_cylinder"),
        (("bottle", "glass", "battery", "gas_cylinder", "bag"), None),
    ],
)
def test_start_up_names_only_the_alert_classes_the_model_lacks(tmp_path: Path, caplog, names, missing) -> None:
    caplog.set_level(logging.INFO)
    agent = Agent.create(agent_settings(tmp_path, serial_port="/dev/null"), detector=ScriptedDetector([], names=names))
    agent.close()
    warnings = alert_warnings(caplog.records, "cannot detect")
    assert warnings == [] if missing is None else (len(warnings) == 1 and f"on {missing}, which" in warnings[0])


def test_a_model_swap_that_loses_the_alert_classes_is_warned(tmp_path: Path, caplog) -> None:
    """A model from the server installed between two lifts: the same check as at start-up."""
    full = ScriptedDetector([], names=("bottle", "glass", "battery", "gas_cylinder", "bag"))
    agent = Agent.create(agent_settings(tmp_path, serial_port="/dev/null"), detector=full)
    try:
        caplog.set_level(logging.INFO)
        new = ScriptedDetector([], names=("bottle", "glass", "bag"), meta=Meta("blind", "2"))
        agent.models.install(RunningModel(new, ModelInfo(name="blind", version="2"), "0" * 64, None))
    finally:
        agent.close()
    [warning] = alert_warnings(caplog.records, "cannot detect")
    assert "battery, gas_cylinder" in warning and "blind 2" in warning


@pytest.mark.parametrize(
    ("alert", "warned"),
    [
        ({}, True),
        ({"serial_port": "/dev/null"}, False),
        ({"broker": "mqtt://127.0.0.1:9"}, False),
    ],
)
def test_start_up_warns_once_when_no_alert_output_is_set(tmp_path: Path, caplog, alert, warned) -> None:
    """Neither a serial line nor a cab broker: alerts went to the log alone, and nothing said so."""
    caplog.set_level(logging.INFO)
    agent = Agent.create(agent_settings(tmp_path, **alert), detector=ScriptedDetector([]))
    agent.close()
    warnings = alert_warnings(caplog.records, "crew will not be alerted")
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert "alert.serial_port" in warnings[0] and "alert.broker" in warnings[0]


def test_a_failed_serial_write_is_retried_at_the_next_detection(tmp_path: Path, pty: tuple[int, str], caplog) -> None:
    """The buzzer's line gone (a cable shaken loose): the alert counted as fired, held the class's
    limit and was never retried; each failure was logged again."""
    master, device = pty
    line = tmp_path / "cab-buzzer"  # not there yet: every write fails
    alert = CrewAlert(LineWriter(str(line), 9600), None, "t/alert", min_interval_s=60)
    caplog.set_level(logging.INFO)
    try:
        assert alert.fire("T1", ("battery",)) is False  # not sounded
        assert alert.fire("T1", ("battery",)) is False  # the next detection tries again, still no line
        assert alert.fire("T1", ("battery",)) is False
        line.symlink_to(device)  # the cable back
        assert alert.fire("T1", ("battery",)) is True
        assert read_lines(master, 1) == [b"ALERT battery"]
        assert alert.fire("T1", ("battery",)) is False  # now heard: the limit holds
    finally:
        alert.close()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR and str(line) in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # once for the streak, not per detection
    assert (alert.fired, alert.failed, alert.suppressed) == (1, 3, 1)


BATTERY_ELSEWHERE = (300, 40, 360, 100, 0.8, 2)


def test_the_same_danger_in_the_next_lift_alerts_again(
    tmp_path: Path, pty: tuple[int, str], mqtt_broker, litter_val_images
) -> None:
    """A battery in one bin, another in the next bin seconds later: the second was silent (the class's
    30 s spanned lifts). Within one lift, the same class seen again on a new track (a flicker) is not."""
    master, device = pty
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=4)
    settings = settings_for(
        tmp_path,
        tmp_path / "bursts",
        mqtt_broker.url,
        unique_truck(),
        alert={"broker": None, "serial_port": device},
        models={"dir": str(tmp_path / "models")},
    )
    script = [[BATTERY], [BATTERY], [BATTERY_ELSEWHERE], [BATTERY_ELSEWHERE]] + [[BATTERY]] * 4
    agent = Agent.create(settings, detector=ScriptedDetector(script))
    try:
        assert agent.run(once=True) == 0
        assert read_lines(master, 3) == [b"ALERT battery", b"ALERT battery"]
        assert (agent.alert.fired, agent.alert.suppressed) == (2, 1)  # the flicker was heard once
    finally:
        agent.close()
