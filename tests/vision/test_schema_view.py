"""Wire 1.4: a lift says its camera's view was unusable (``view_unusable``), the heartbeat the view's
state (``camera_view``); a 1.3 lift or heartbeat, without them, is read as before."""

from __future__ import annotations

import json

import pytest

from vision.schema import SCHEMA_VERSION, EvidenceReason, SchemaError, TruckStats, ViewProblem, parse_lift_event

LIFT_1_3 = {
    "schema_version": "1.3", "event_id": "6d3c1e9a-3f0b-4b51-9f7e-2a8e8c1d0b11", "truck_id": "benne-12",
    "sequence": 7, "stream": "recyclables", "started_at": "2026-12-05T08:00:00Z", "ended_at": "2026-12-05T08:00:04Z",
    "counts": {"bottle": 2}, "errors": [], "contaminated": False, "score": 0.0,
    "model": {"name": "trivue-waste", "version": "1.0"}, "frames": 12,
}
HEARTBEAT_1_3 = {"truck_id": "benne-12", "sent_at": "2026-12-05T08:00:00Z", "uptime_s": 60.0,
                 "camera_clock_offset_s": 2.5}


def test_the_version_is_1_4() -> None:
    assert SCHEMA_VERSION == "1.4"


def test_a_1_3_lift_and_heartbeat_stay_valid() -> None:
    event = parse_lift_event(json.dumps(LIFT_1_3))
    assert event.view_unusable is None and event.counts == {"bottle": 2}
    stats = TruckStats.model_validate_json(json.dumps(HEARTBEAT_1_3))
    assert stats.camera_view is None and stats.camera_clock_offset_s == 2.5


@pytest.mark.parametrize("problem", list(ViewProblem))
def test_a_lift_with_an_unusable_view_says_why(problem: ViewProblem) -> None:
    event = parse_lift_event(json.dumps({**LIFT_1_3, "schema_version": "1.4", "view_unusable": problem.value}))
    assert event.view_unusable is problem
    assert parse_lift_event(event.to_json()) == event  # the round trip the outbox makes


def test_an_unknown_view_problem_is_refused_by_name() -> None:
    with pytest.raises(SchemaError, match="view_unusable"):
        parse_lift_event(json.dumps({**LIFT_1_3, "view_unusable": "foggy"}))


def test_the_heartbeat_carries_the_view_state() -> None:
    sent = {**HEARTBEAT_1_3, "camera_view": {"problem": "dark", "lifts": 3, "since": "2026-12-05T06:10:00Z"}}
    stats = TruckStats.model_validate_json(json.dumps(sent))
    assert stats.camera_view is not None
    assert (stats.camera_view.problem, stats.camera_view.lifts) == (ViewProblem.dark, 3)
    again = TruckStats.model_validate_json(stats.model_dump_json())
    assert again == stats
    with pytest.raises(ValueError, match=r"camera_view\.lifts"):
        TruckStats.model_validate_json(json.dumps({**sent, "camera_view": {"problem": "dark", "lifts": -1}}))


def test_a_view_photo_belongs_to_a_lift_whose_view_was_unusable() -> None:
    """``evidence.reason: view`` (1.4) is the photo of what the camera saw when its view turned unusable."""
    photo = {"sha256": "a" * 64, "width": 320, "height": 240, "reason": "view", "detections": []}
    event = parse_lift_event(json.dumps({**LIFT_1_3, "schema_version": "1.4", "view_unusable": "flat",
                                         "evidence": photo}))
    assert event.evidence is not None and event.evidence.reason is EvidenceReason.view
    with pytest.raises(SchemaError, match="view_unusable must be set"):
        parse_lift_event(json.dumps({**LIFT_1_3, "schema_version": "1.4", "evidence": photo}))
