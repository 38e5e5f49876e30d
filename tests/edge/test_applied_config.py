"""The server's config outlives the agent's restart: a truck started out of reach of the broker
counts with the stream and thresholds it was last sent, not with its settings file's."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt

from edge.app import Agent
from tests.edge.helpers import GatedPort, ScriptedDetector, Subscriber, make_bursts, unique_truck
from tests.edge.test_agent import GLASS, settings_for
from vision.schema import parse_lift_event

CONFIG = {"config_version": "v5", "stream": "glass", "conf": 0.5, "min_track_frames": 3}


def publish_retained(host: str, port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_restart_out_of_reach_counts_with_the_last_config_applied(tmp_path, mqtt_broker, litter_val_images) -> None:
    """The stream of a round changed from the office (recyclables -> glass), then the truck's
    computer restarted where the network does not reach (a depot's basement, a valley). Before, it
    counted with its file's stream until the retained config came back: glass bottles in the glass
    round judged as errors of the yellow bin, the lift published as a recyclables lift."""
    truck = unique_truck()
    topic = f"trivue/v1/{truck}/config"
    publish_retained(mqtt_broker.host, mqtt_broker.port, topic, json.dumps(CONFIG).encode())
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=3)
    settings = settings_for(tmp_path, tmp_path / "bursts", mqtt_broker.url, truck)
    first = Agent.create(settings, detector=ScriptedDetector([]))
    try:
        first.uplink.start()
        assert first.uplink.connected.wait(10)
        deadline = threading.Event()
        for _ in range(100):
            if first.live.version == "v5":
                break
            deadline.wait(0.1)
        assert first.live.stream.value == "glass" and first.detector.conf == 0.5
    finally:
        first.close()
    # The office meanwhile cleared the retained config (or the broker lost it): nothing comes back.
    publish_retained(mqtt_broker.host, mqtt_broker.port, topic, b"")

    gate = GatedPort((mqtt_broker.host, mqtt_broker.port))  # the broker out of reach at start-up
    offline = settings_for(
        tmp_path, tmp_path / "bursts", f"mqtt://127.0.0.1:{gate.port}", truck, alert={"broker": None}
    )
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/lift")
    detector = ScriptedDetector([[GLASS]] * 3)
    agent = Agent.create(offline, detector=detector)
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(agent.run(once=True)))
    try:
        assert (agent.live.stream.value, agent.live.version) == ("glass", "v5")
        assert (detector.conf, agent.recorder.min_track_frames) == (0.5, 3)
        worker.start()
        assert subscriber.wait_for(lambda: agent.outbox.depth() >= 1, timeout=30)  # counted while unreachable
        gate.open()
        worker.join(timeout=60)
        assert result == [0]
        assert subscriber.wait_for(lambda: len(subscriber.on("/lift")) >= 1)
        event = parse_lift_event(subscriber.on("/lift")[0])
    finally:
        agent.close()
        subscriber.close()
        gate.close()
    assert event.stream.value == "glass"
    assert event.counts == {"glass": 1} and not event.contaminated  # glass in the glass round


def test_a_config_file_that_cannot_be_used_starts_from_the_settings_file(tmp_path, caplog) -> None:
    """Half a file (a card that failed), another truck's (a state folder copied), a stream this
    version does not know: the settings file applies, said once; never a crash at start-up."""
    from edge.applied_config import config_file, read_applied, write_applied
    from vision.schema import TruckConfig

    path = config_file(tmp_path / "outbox.sqlite3")
    assert read_applied(path, "benne-01") is None  # none yet: nothing to say
    model = {"name": "trivue-waste", "version": "2026.12", "sha256": "a" * 64, "url": "/api/models/x.onnx"}
    write_applied(path, "benne-01", TruckConfig.model_validate({**CONFIG, "model": model}))
    kept = read_applied(path, "benne-01")
    assert kept is not None and kept.model_dump(mode="json", exclude_none=True) == CONFIG  # the model left out
    assert read_applied(path, "benne-02") is None
    for damaged in (
        path.read_bytes()[:20],
        b'{"truck_id": "benne-01", "config": {"config_version": "v6", "stream": "paper-and-cans"}}',
        b"\xff\xfe",
        b"[]",
    ):
        path.write_bytes(damaged)
        caplog.clear()
        assert read_applied(path, "benne-01") is None
        assert "starting from the settings file" in caplog.text, damaged


def test_a_setting_the_server_no_longer_sets_returns_to_the_settings_file_at_once(tmp_path) -> None:
    """An admin reset the truck's stream and thresholds (``reset``: the retained config lacks them).
    Before, the truck ran the server's old values until its next restart, and the fleet page showed a
    truck running values nobody configured any more. The model, which only rollouts change, stays."""
    import yaml

    from edge.applied_config import config_file
    from vision.rules import DEFAULT_RULES
    from vision.schema import TruckConfig

    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["streams"] = {k: rules["streams"][k] for k in ("recyclables", "glass")}  # no paper rounds here
    (path := tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    (tmp_path / "bursts").mkdir()
    settings = settings_for(
        tmp_path,
        tmp_path / "bursts",
        "mqtt://127.0.0.1:9",
        unique_truck(),
        rules=str(path),
        alert={"broker": None},
        conf=0.3,
        tracking={"min_track_frames": 2},
    )
    agent = Agent.create(settings, detector=ScriptedDetector([], conf=settings.conf))
    requested: list[object] = []
    agent.models.request = requested.append  # type: ignore[method-assign]  # no download here
    model = {"name": "trivue-waste", "version": "2026.12", "sha256": "a" * 64, "url": "/api/models/x.onnx"}
    try:
        agent.apply_config(TruckConfig.model_validate({**CONFIG, "model": model}))
        assert (agent.live.stream.value, agent.detector.conf, agent.recorder.min_track_frames) == ("glass", 0.5, 3)
        agent.apply_config(TruckConfig.model_validate({"config_version": "v6", "model": model}))
        ran = (agent.live.stream.value, agent.live.version, agent.detector.conf, agent.recorder.min_track_frames)
        assert len(requested) == 2  # the model as it was: an absent model still means keep it
        # a refused config changes nothing, not even the settings it lacks
        agent.apply_config(TruckConfig.model_validate({"config_version": "v7", "stream": "paper"}))
        refused = (agent.live.stream.value, agent.live.version, agent.detector.conf, agent.recorder.min_track_frames)
    finally:
        agent.close()
    assert ran == ("recyclables", "v6", 0.3, 2)  # the settings file's, at once
    assert refused == ran and agent.live.refused is not None and agent.live.refused.startswith("v7: ")
    saved = json.loads(config_file(settings.outbox.path).read_text(encoding="utf-8"))
    assert saved["config"] == {"config_version": "v6"}  # a restart runs the same values

    restarted = Agent.create(settings, detector=ScriptedDetector([], conf=settings.conf))
    try:
        after = (
            restarted.live.stream.value,
            restarted.live.version,
            restarted.detector.conf,
            restarted.recorder.min_track_frames,
        )
    finally:
        restarted.close()
    assert after == ran


def test_a_threshold_sent_while_a_new_model_is_built_reaches_the_new_model(tmp_path) -> None:
    """The updater builds a sent model in its thread with the threshold of that moment; a config
    changing ``conf`` before the swap (a lift later) set it on the old detector, and the new one ran
    the old threshold until the next config."""
    from edge.model_update import RunningModel
    from vision.schema import ModelInfo, TruckConfig

    (tmp_path / "bursts").mkdir()
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", unique_truck(),
                            alert={"broker": None}, conf=0.3)
    agent = Agent.create(settings, detector=ScriptedDetector([], conf=settings.conf))
    try:
        built = ScriptedDetector([], conf=agent.detector.conf)  # what _build_detector gave: the threshold then
        agent.apply_config(TruckConfig.model_validate({"config_version": "v8", "conf": 0.55}))
        agent.models.install(RunningModel(built, ModelInfo(name="trivue-waste", version="2"), "0" * 64, None))
        assert agent.detector is built and built.conf == 0.55
    finally:
        agent.close()
