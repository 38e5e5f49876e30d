"""The truck agent end to end over a real broker: burst folders of real photos -> lift events."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from edge.app import Agent
from edge.config import EdgeSettings, load_settings
from tests.edge.helpers import GatedPort, ScriptedDetector, Subscriber, make_bursts, suback_seen, unique_truck
from vision.schema import TruckStats, parse_lift_event

BOTTLE = (20, 20, 120, 160, 0.9, 0)
GLASS = (200, 40, 300, 180, 0.85, 1)
BATTERY = (60, 200, 110, 260, 0.8, 2)
BOTTLE_2 = (250, 220, 330, 330, 0.9, 0)

# Three lifts of three frames: bottle + glass (glass is an error in the yellow bin), two bottles
# (clean), a battery (alert). A glass sighting in one frame only is a flicker and is not counted.
SCRIPT = [
    [BOTTLE, GLASS], [BOTTLE, GLASS], [BOTTLE],
    [BOTTLE, BOTTLE_2], [BOTTLE, BOTTLE_2], [BOTTLE, BOTTLE_2, GLASS],
    [BATTERY], [BATTERY], [],
]
EXPECTED = [
    ({"bottle": 1, "glass": 1}, True, 1.0),
    ({"bottle": 2}, False, 0.0),
    ({"battery": 1}, True, 3.0),
]


def settings_for(tmp_path: Path, source: Path, broker: str, truck: str, **extra: Any) -> EdgeSettings:
    tree = {
        "truck_id": truck, "source": str(source), "stream": "recyclables",
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        # No random sample of clean lifts here: these tests count photos (the sample has its own test).
        "evidence": {"dir": str(tmp_path / "evidence"), "sample_clean_rate": 0},
        # A bare broker and no server: nobody sends receipts, so rows go on PUBACK (the receipt
        # mode is tested with the server's ingest in tests/reliability and tests/edge/test_uplink.py).
        "uplink": {"broker": broker, "reconnect_max_s": 1, "flush_timeout_s": 30, "delete_after": "puback"},
        "alert": {"broker": broker},
        "gps": {"source": "fixed:47.9029,1.9093"},
    }
    for key, value in extra.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return load_settings(None, tree, environ={})


def run_agent(settings: EdgeSettings, detector: ScriptedDetector) -> int:
    agent = Agent.create(settings, detector=detector)
    try:
        return agent.run(once=True)
    finally:
        agent.close()


def test_bursts_become_lift_events_with_scripted_counts(tmp_path, mqtt_broker, litter_val_images) -> None:
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=3)
    settings = settings_for(tmp_path, tmp_path / "bursts", mqtt_broker.url, truck)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/#")
    try:
        assert run_agent(settings, ScriptedDetector(SCRIPT)) == 0
        assert subscriber.wait_for(lambda: len(subscriber.on("/status")) >= 2)
        events = sorted((parse_lift_event(p) for p in subscriber.on("/lift")), key=lambda e: e.sequence)
        alerts = [json.loads(p) for p in subscriber.on("/alert")]
        photos = {t.rsplit("/", 1)[-1]: p for t, p, _r in subscriber.messages if "/evidence/" in t}
        statuses = subscriber.on("/status")
    finally:
        subscriber.close()
    assert [(e.counts, e.contaminated, e.score) for e in events] == EXPECTED
    assert [e.sequence for e in events] == [0, 1, 2]
    assert all(e.truck_id == truck and e.frames == 3 and e.gps and e.gps.lat == 47.9029 for e in events)
    assert [e.errors[0].class_ for e in events if e.errors] == ["glass", "battery"]
    # a photo for each contaminated lift, the JPEG the event describes
    assert set(photos) == {str(e.event_id) for e in events if e.contaminated}
    for event in events:
        if event.contaminated:
            assert event.evidence and hashlib.sha256(photos[str(event.event_id)]).hexdigest() == event.evidence.sha256
            assert photos[str(event.event_id)][:2] == b"\xff\xd8"
            assert len(list((tmp_path / "evidence").rglob(f"{event.event_id}.jpg"))) == 1
    assert [a["classes"] for a in alerts] == [["battery"]]
    assert statuses[0] == b"online" and statuses[-1] == b"stopped"


def test_rerun_does_not_recount_consumed_bursts(tmp_path, mqtt_broker, litter_val_images) -> None:
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=2)
    settings = settings_for(tmp_path, tmp_path / "bursts", mqtt_broker.url, truck)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/lift")
    try:
        assert run_agent(settings, ScriptedDetector([[BOTTLE]] * 4)) == 0
        make_bursts(tmp_path / "more", litter_val_images, lifts=1, frames=2)
        (tmp_path / "more" / "burst-000").rename(tmp_path / "bursts" / "burst-100")
        assert run_agent(settings, ScriptedDetector([[BOTTLE]] * 2)) == 0
        assert subscriber.wait_for(lambda: len(subscriber.on("/lift")) >= 3)
        events = [parse_lift_event(p) for p in subscriber.on("/lift")]
    finally:
        subscriber.close()
    assert len(events) == 3  # the second run saw only the new burst
    assert sorted(e.sequence for e in events) == [0, 1, 2]  # sequence survives the restart


def test_broker_down_at_start_every_lift_arrives_once(tmp_path, mqtt_broker, litter_val_images) -> None:
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=4, frames=2)
    gate = GatedPort((mqtt_broker.host, mqtt_broker.port))
    settings = settings_for(tmp_path, tmp_path / "bursts", f"mqtt://127.0.0.1:{gate.port}", truck,
                            alert={"broker": None})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/lift")
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE, GLASS]] * 8))
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(agent.run(once=True)))
    try:
        worker.start()
        assert subscriber.wait_for(lambda: agent.outbox.depth() >= 8, timeout=30)  # 4 lifts + 4 photos
        assert subscriber.on("/lift") == []  # nothing could leave: the broker is down
        gate.open()
        worker.join(timeout=60)
        assert result == [0]
        assert subscriber.wait_for(lambda: len(subscriber.on("/lift")) >= 4)
        events = [parse_lift_event(p) for p in subscriber.on("/lift")]
    finally:
        agent.close()
        subscriber.close()
        gate.close()
    assert len(events) == 4 and len({e.event_id for e in events}) == 4
    assert [e.sequence for e in events] == [0, 1, 2, 3]  # replayed in order


def test_a_config_the_truck_cannot_apply_is_said_in_its_heartbeat(tmp_path, mqtt_broker, litter_val_images) -> None:
    """A stream the truck's rules do not cover: the truck keeps its settings, and its heartbeat
    says which config it refused and why (the server used to see only an old config_version)."""
    import paho.mqtt.client as mqtt
    import yaml

    from vision.rules import DEFAULT_RULES

    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["streams"] = {"recyclables": rules["streams"]["recyclables"]}  # a deployment without glass rounds
    (path := tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    settings = settings_for(tmp_path, tmp_path / "bursts", mqtt_broker.url, truck, rules=str(path))
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/stats")
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 2))
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    topic = f"trivue/v1/{truck}/config"

    def heartbeat(version: str) -> dict[str, Any]:
        assert subscriber.wait_for(lambda: any(version.encode() in p for p in subscriber.on("/stats")), timeout=10)
        return json.loads(next(p for p in reversed(subscriber.on("/stats")) if version.encode() in p))

    config_subscribed = suback_seen(agent.uplink.client)
    try:
        agent.uplink.start()
        assert config_subscribed.wait(10), "the uplink never subscribed to its config"  # it does in on_connect
        publisher.publish(topic, json.dumps({"config_version": "v8", "stream": "glass"}), qos=1).wait_for_publish(5)
        refused = heartbeat("v8")  # sent at once, not at the next minute's heartbeat
        reason = refused["config_refused"]
        assert reason.startswith("v8: ") and "no rules for stream 'glass'" in reason
        assert refused["config_version"] is None and refused["stream"] == "recyclables"
        publisher.publish(topic, b'{"config_version": "v9", "stream": "bogus"}', qos=1).wait_for_publish(5)
        unreadable = heartbeat('"v9: stream')  # a config this truck cannot even read (a newer server's stream)
        # the field and the value sent: the enum's words alone did not say what the server had sent
        assert unreadable["config_refused"].startswith("v9: stream: 'bogus': Input should be")
        publisher.publish(topic, json.dumps({"config_version": "v10", "conf": 0.5}), qos=1).wait_for_publish(5)
        assert subscriber.wait_for(lambda: agent.live.version == "v10", timeout=10)
        agent.uplink.send_stats_soon()
        applied = heartbeat('"v10"')
    finally:
        agent.close()
        subscriber.close()
        publisher.disconnect()
        publisher.loop_stop()
    assert applied["config_refused"] is None and applied["config_version"] == "v10"
    assert agent.live.stream.value == "recyclables"


@pytest.mark.parametrize("extra", [{"conf": 0.5}, {"stream": "glass"}])
def test_retained_config_is_applied_live(tmp_path, mqtt_broker, litter_val_images, extra) -> None:
    import paho.mqtt.client as mqtt

    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    config = {"config_version": "v7", **extra}
    publisher.publish(f"trivue/v1/{truck}/config", json.dumps(config), qos=1, retain=True).wait_for_publish(5)
    settings = settings_for(tmp_path, tmp_path / "bursts", mqtt_broker.url, truck)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/stats")
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 2))
    try:
        agent.uplink.start()
        assert subscriber.wait_for(lambda: agent.live.version == "v7", timeout=10)
        agent.uplink._next_stats = 0.0  # ask for a heartbeat now rather than in a minute
        agent.uplink.wake()
        assert subscriber.wait_for(lambda: any(b'"v7"' in p for p in subscriber.on("/stats")), timeout=10)
        stats = json.loads(subscriber.on("/stats")[-1])
        TruckStats.model_validate(stats)  # the heartbeat is the wire model
    finally:
        agent.close()
        subscriber.close()
        publisher.publish(f"trivue/v1/{truck}/config", b"", qos=1, retain=True).wait_for_publish(5)
        publisher.disconnect()
        publisher.loop_stop()
    assert stats["config_version"] == "v7" and stats["truck_id"] == truck
    if "stream" in extra:
        assert stats["stream"] == "glass" and agent.live.stream.value == "glass"
    else:
        assert agent.detector.conf == 0.5


def test_video_with_motion_lifts_resumes_after_committed_lifts(tmp_path, mqtt_broker, litter_val_images) -> None:
    import cv2

    from tests.edge.test_camera import write_clip

    photo = cv2.resize(cv2.imread(str(litter_val_images[0])), (320, 240))
    item = cv2.resize(cv2.imread(str(litter_val_images[1])), (60, 60))
    clip = write_clip(tmp_path / "round.avi", photo, item, range(10, 20), 40)
    truck = unique_truck()
    settings = settings_for(tmp_path, clip, mqtt_broker.url, truck, frame_rate=10,
                            trigger={"kind": "motion", "motion_threshold": 0.01, "motion_quiet_frames": 3})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/lift")
    try:
        first = ScriptedDetector([[BOTTLE]] * 40)
        assert run_agent(settings, first) == 0
        again = ScriptedDetector([[BOTTLE]] * 40)
        assert run_agent(settings, again) == 0  # a restart: the committed lift is not replayed
        assert subscriber.wait_for(lambda: len(subscriber.on("/lift")) >= 1)
        events = [parse_lift_event(p) for p in subscriber.on("/lift")]
    finally:
        subscriber.close()
    assert len(events) == 1 and events[0].counts == {"bottle": 1}
    assert 10 <= first.calls <= 14 and again.calls == 0  # only motion frames were analysed


def test_a_lift_whose_photo_cannot_fit_goes_without_it_and_is_counted(tmp_path, litter_val_images,
                                                                      monkeypatch) -> None:
    from edge.evidence import EvidenceStore
    from edge.outbox import EVIDENCE, LIFT

    monkeypatch.setattr(EvidenceStore, "render", lambda *_a: None)  # as when no encoding fits max_bytes
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=3)
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", unique_truck(),
                            uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector(SCRIPT))
    try:
        agent.run(once=True)  # no broker: everything stays in the outbox
        rows = agent.outbox.oldest(limit=100)
        stats = agent.stats()
    finally:
        agent.close()
    events = [parse_lift_event(m.payload) for m in rows if m.kind == LIFT]
    assert [e.contaminated for e in events] == [True, False, True]
    assert all(e.evidence is None for e in events) and not [m for m in rows if m.kind == EVIDENCE]
    assert stats.photos_too_large == 2 and stats.photos_refused == 0


UNSURE_BOTTLE = (20, 20, 120, 160, 0.3, 0)  # in the uncertain band [0.25, 0.5), under activation_conf: never a track


def test_the_truck_keeps_contaminated_uncertain_and_sampled_lifts(tmp_path, mqtt_broker, litter_val_images) -> None:
    # lift 1 contaminated, lift 2 clean but the model hesitated, lift 3 clean and sure, lift 4 empty
    script = [[BOTTLE, GLASS]] * 2 + [[UNSURE_BOTTLE]] * 2 + [[BOTTLE]] * 2 + [[], []]
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=4, frames=2)
    reasons: dict[float, list[str | None]] = {}
    for rate in (1.0, 0.0):  # every clean lift sampled, then none
        settings = settings_for(tmp_path / str(rate), tmp_path / "bursts", mqtt_broker.url, f"{truck}-{int(rate)}",
                                evidence={"sample_clean_rate": rate})
        subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}-{int(rate)}/#")
        try:
            assert run_agent(settings, ScriptedDetector(script)) == 0
            assert subscriber.wait_for(lambda s=subscriber: len(s.on("/lift")) >= 4)
            events = sorted((parse_lift_event(p) for p in subscriber.on("/lift")), key=lambda e: e.sequence)
            kept = sum(e.evidence is not None for e in events)
            assert subscriber.wait_for(lambda s=subscriber, n=kept:
                                       len([t for t, _p, _r in s.messages if "/evidence/" in t]) >= n)
            photos = {t.rsplit("/", 1)[-1]: p for t, p, _r in subscriber.messages if "/evidence/" in t}
        finally:
            subscriber.close()
        reasons[rate] = [e.evidence.reason.value if e.evidence else None for e in events]
        assert set(photos) == {str(e.event_id) for e in events if e.evidence}
        first = events[0].evidence
        assert first is not None and first.detections is not None
        assert sorted(b.class_ for b in first.detections) == ["bottle", "glass"]  # every box, with confidences
        assert all(0 <= b.x1 < b.x2 <= 1 and 0 <= b.y1 < b.y2 <= 1 for b in first.detections)
        unsure = events[1].evidence  # the hesitant bottle never became an item, but the photo shows it
        assert events[1].counts == {} and [(b.class_, round(b.confidence, 2)) for b in unsure.detections] == [
            ("bottle", 0.3)]
    assert reasons[1.0] == ["contaminated", "uncertain", "sample", "sample"]
    assert reasons[0.0] == ["contaminated", "uncertain", None, None]
