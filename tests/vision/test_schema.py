"""The wire contract: strict on values, tolerant of newer minor versions, light to import."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from base.paths import REPO_ROOT
from vision.schema import SCHEMA_VERSION, LiftEvent, SchemaError, TruckStats, json_schema, parse_lift_event


def event_dict(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(uuid.uuid4()),
        "truck_id": "truck-07",
        "sequence": 12,
        "stream": "recyclables",
        "started_at": "2026-11-25T07:30:00+01:00",
        "ended_at": "2026-11-25T07:30:06+01:00",
        "gps": {"lat": 47.9029, "lon": 1.9093, "accuracy_m": 4.5, "heading_deg": 87.0,
                "fix_at": "2026-11-25T06:30:05Z"},
        "bin_id": "E2801160600002084",
        "counts": {"bottle": 3, "bag": 1},
        "errors": [{"class": "bag", "count": 1, "category": "sac_ferme", "severity": "error"}],
        "contaminated": True,
        "score": 1.0,
        "model": {"name": "trivue-waste", "version": "2026.11.25"},
        "frames": 14,
        "evidence": {"sha256": "a" * 64, "width": 640, "height": 480},
    }
    base.update(changes)
    return base


def test_import_pulls_no_vision_stack() -> None:
    code = ("import sys, vision.schema; heavy = {'numpy', 'cv2', 'onnxruntime', 'torch'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"


def test_round_trip_and_utc() -> None:
    event = parse_lift_event(json.dumps(event_dict()))
    assert event.started_at == datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
    assert event.started_at.utcoffset().total_seconds() == 0
    again = parse_lift_event(event.to_json())
    assert again == event
    assert json.loads(event.to_json())["errors"][0]["class"] == "bag"


def test_newer_minor_version_and_unknown_fields_are_accepted() -> None:
    event = parse_lift_event(json.dumps(event_dict(schema_version="1.7", weather="rain")))
    assert event.schema_version == "1.7"
    assert not hasattr(event, "weather")


def test_optional_parts_may_be_absent() -> None:
    payload = event_dict(gps=None, bin_id=None, evidence=None, errors=[], contaminated=False, score=0)
    assert parse_lift_event(json.dumps(payload)).gps is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gps": {"lat": 91, "lon": 1.9}}, "gps.lat"),
        ({"counts": {"bottle": -1}}, "counts.bottle"),
        ({"started_at": "2026-11-25T07:30:00"}, "started_at"),
        ({"stream": "plutonium"}, "stream"),
        ({"schema_version": "2.0"}, "schema_version"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"truck_id": "../../etc"}, "truck_id"),
        ({"errors": [{"class": "bag", "count": 1, "category": "x", "severity": "fatal"}]}, "errors.0.severity"),
        ({"ended_at": "2026-11-25T07:29:00+01:00"}, "before started_at"),
        ({"contaminated": False}, "contaminated"),
        ({"evidence": {"sha256": "xyz", "width": 1, "height": 1}}, "evidence.sha256"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SchemaError, match=field.replace(".", r"\.")):
        parse_lift_event(json.dumps(event_dict(**changes)))


@pytest.mark.parametrize("payload", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'{"truck_id": 3}'])
def test_garbage_is_a_schema_error(payload: bytes) -> None:
    with pytest.raises(SchemaError):
        parse_lift_event(payload)


def test_published_json_schema_is_up_to_date() -> None:
    schema = json_schema()
    assert {"event_id", "truck_id", "sequence", "stream", "counts", "errors", "score"} <= set(schema["properties"])
    published = json.loads((REPO_ROOT / "docs" / "lift-event.schema.json").read_text())
    assert published == schema, "run `make schema` to refresh docs/lift-event.schema.json"


def test_has_alert() -> None:
    assert LiftEvent.model_validate(event_dict()).has_alert is False
    battery = [{"class": "battery", "count": 1, "category": "dangereux", "severity": "alert"}]
    assert LiftEvent.model_validate(event_dict(counts={"battery": 1}, errors=battery, score=3.0)).has_alert is True


def _old_reader():
    """vision/schema.py as wire version 1.0 shipped it (a frozen copy): the old server."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("schema_1_0", REPO_ROOT / "tests/fixtures/wire/schema_1_0.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["schema_1_0"] = module  # pydantic resolves the postponed annotations through it
    spec.loader.exec_module(module)
    return module


MODEL = {"name": "trivue-waste", "version": "2026.11.25"}
MODEL_SHA = "0123456789abcdef" * 4  # the ONNX file that judged the lift (wire 1.2)
BOXES = [{"class": "bag", "confidence": 0.42, "x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.5}]


def test_an_old_server_reads_a_new_truck_and_ignores_the_new_fields() -> None:
    old = _old_reader()
    assert old.SCHEMA_VERSION == "1.0" and SCHEMA_VERSION == "1.4"
    new = event_dict(evidence={"sha256": "a" * 64, "width": 640, "height": 480, "reason": "uncertain",
                               "detections": BOXES}, model={**MODEL, "sha256": MODEL_SHA}, view_unusable="dark")
    event = old.parse_lift_event(json.dumps(new))
    assert event.evidence.sha256 == "a" * 64 and not hasattr(event.evidence, "reason")
    assert event.model.version == MODEL["version"] and not hasattr(event.model, "sha256")


def test_a_new_server_reads_an_old_truck() -> None:
    old = _old_reader()
    payload = old.LiftEvent.model_validate(event_dict(schema_version="1.0")).to_json()
    event = parse_lift_event(payload)
    assert event.evidence.reason == "contaminated" and event.evidence.detections is None


@pytest.mark.parametrize(("box", "message"), [
    ({**BOXES[0], "x2": 1.5}, r"evidence\.detections\.0\.x2"),
    ({**BOXES[0], "x2": 0.05}, "empty box"),
    ({**BOXES[0], "confidence": -0.1}, "confidence"),
    ({**BOXES[0], "class": ""}, "class"),
])
def test_bad_boxes_are_refused_naming_the_field(box: dict[str, Any], message: str) -> None:
    evidence = {"sha256": "a" * 64, "width": 640, "height": 480, "reason": "sample", "detections": [box]}
    with pytest.raises(SchemaError, match=message):
        parse_lift_event(json.dumps(event_dict(evidence=evidence)))


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_the_model_file_is_named_when_sent_and_optional_before_1_2(version: str) -> None:
    """Wire 1.2: ``model.sha256`` names the ONNX file that judged the lift (INT8 and FP32 files of a
    version share its name and version); an older truck sends none, and its lifts still validate."""
    without = parse_lift_event(json.dumps(event_dict(schema_version=version)))
    assert without.model.sha256 is None and parse_lift_event(without.to_json()) == without
    named = parse_lift_event(json.dumps(event_dict(schema_version=version, model={**MODEL, "sha256": MODEL_SHA})))
    assert named.model.sha256 == MODEL_SHA
    again = parse_lift_event(named.to_json())
    assert again == named and again.model.sha256 == MODEL_SHA


HEARTBEAT_1_2 = {"truck_id": "benne-12", "sent_at": "2026-12-05T08:00:00Z", "uptime_s": 60.0, "outbox_depth": 3,
                 "disk_short": False, "outbox_photos_expired": 0}  # what a 1.2 truck sends


SPAN_S = (datetime.max - datetime.min).total_seconds()  # the largest offset two photo stamps can give


@pytest.mark.parametrize("offset", [None, 180.4, -45.0, 1.7e9, SPAN_S, -SPAN_S])
def test_a_heartbeat_says_how_far_the_camera_clock_is_off_from_1_3(offset: float | None) -> None:
    """Wire 1.3: ``camera_clock_offset_s`` (positive: the camera box behind; a box in 1970 is decades
    behind; whatever a photo's stamp, the truck's heartbeat is never refused for it); a 1.2 truck
    sends none and its heartbeat still validates; an old server ignores it."""
    sent = HEARTBEAT_1_2 if offset is None else {**HEARTBEAT_1_2, "camera_clock_offset_s": offset}
    stats = TruckStats.model_validate_json(json.dumps(sent))
    assert stats.camera_clock_offset_s == offset
    again = TruckStats.model_validate_json(stats.model_dump_json())
    assert again == stats and again.camera_clock_offset_s == offset
    old = _old_reader().TruckStats.model_validate_json(stats.model_dump_json())
    assert old.outbox_depth == 3 and not hasattr(old, "camera_clock_offset_s")


@pytest.mark.parametrize("offset", ["NaN", "Infinity", "-1e300", "1e300", '"3 min"'])
def test_a_camera_clock_offset_that_is_not_one_is_refused(offset: str) -> None:
    payload = json.dumps(HEARTBEAT_1_2)[:-1] + f', "camera_clock_offset_s": {offset}}}'
    with pytest.raises(ValueError, match="camera_clock_offset_s"):
        TruckStats.model_validate_json(payload)


@pytest.mark.parametrize("sha", ["A" * 64, "a" * 63, "g" * 64, ""])
def test_a_model_sha256_that_is_not_one_is_refused(sha: str) -> None:
    with pytest.raises(SchemaError, match=r"model\.sha256"):
        parse_lift_event(json.dumps(event_dict(model={**MODEL, "sha256": sha})))


def test_reason_must_be_known() -> None:
    evidence = {"sha256": "a" * 64, "width": 640, "height": 480, "reason": "whim"}
    with pytest.raises(SchemaError, match=r"evidence\.reason"):
        parse_lift_event(json.dumps(event_dict(evidence=evidence)))


def test_a_receipt_nested_too_deeply_is_a_value_error() -> None:
    """json's parser recursed and raised RecursionError in paho's thread: the truck stopped receiving."""
    from vision.schema import parse_receipt

    with pytest.raises(ValueError, match="nested too deeply"):
        parse_receipt(b"[" * 100_000)
