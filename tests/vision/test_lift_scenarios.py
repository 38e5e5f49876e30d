"""The counting path end to end, without a model: synthetic detections -> Tracker -> LiftRecorder -> LiftEvent.

Scenarios a hopper produces (occlusion, an item leaving and coming back, a class flicker, bursts of
zero, one or few frames, a long lift), the stream judgement of one lift in every stream, and which
frame a contaminated lift keeps as evidence. Complements test_tracking.py (the tracker alone) and
test_lift.py (the recorder fed with ready-made track ids).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder, RecordedLift
from vision.rules import SortingRules
from vision.schema import ModelInfo, Severity, Stream, parse_lift_event
from vision.tracking import Tracker

NAMES = ("bag", "bottle", "can", "carton", "cup", "polystyrene", "film", "glass", "electronics", "medical",
         "battery")
BAG, BOTTLE, CAN, GLASS, ELECTRONICS, BATTERY = 0, 1, 2, 7, 8, 10
T0 = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
Row = tuple[float, float, float, float, float, int]


def item(x: float, y: float, cls: int = BAG, conf: float = 0.9, size: float = 60) -> Row:
    return (x, y, x + size, y + size * 1.3, conf, cls)


def lift(frames: list[list[Row]], stream: Stream = Stream.recyclables, min_track: int = 2,
         names: tuple[str, ...] = NAMES) -> tuple[RecordedLift, list[tuple[str, ...]]]:
    """Run the frames through a fresh tracker and recorder, as the truck does for one lift."""
    tracker = Tracker()
    recorder = LiftRecorder(names, SortingRules.load(), ModelInfo(name="m", version="1"), min_track)
    recorder.begin(T0, stream)
    alerts = []
    for index, rows in enumerate(frames):
        image = np.full((480, 640, 3), index % 255, np.uint8)
        image[::7, ::5] = 255  # some edges, so that sharpness is not zero
        alerts.append(recorder.add(image, tracker.update(Detections.from_rows(rows))))
    recorded = recorder.finish(T0 + timedelta(seconds=3), LiftContext("benne-01", 1))
    parse_lift_event(recorded.event.to_json())  # whatever the scenario, the event is valid on the wire
    return recorded, alerts


def walk(steps: int, x: float = 100, y: float = 100, cls: int = BAG, dx: float = 8, dy: float = 5) -> list[list[Row]]:
    return [[item(x + dx * s, y + dy * s, cls)] for s in range(steps)]


@pytest.mark.parametrize(("frames", "counts"), [
    pytest.param([], {}, id="zero frames"),
    pytest.param([[item(100, 100)]], {"bag": 1}, id="one-frame burst"),
    pytest.param([[item(100, 100)], [], [item(104, 102)]], {"bag": 1}, id="missed in the middle of a burst"),
    pytest.param(walk(12), {"bag": 1}, id="seen in every frame"),
    pytest.param([[item(100, 100)]] * 5 + [[]] * 5 + [[item(102, 101)]] * 5, {"bag": 1},
                 id="at rest, hidden five frames, back in place"),
    pytest.param([[item(100 + 8 * s, 100)] if not 5 <= s < 10 else [] for s in range(15)], {"bag": 1},
                 id="hidden five frames while moving"),
    pytest.param([[item(100, 100, cls=BOTTLE if s % 3 else CAN)] for s in range(9)], {"bottle": 1},
                 id="class flicker: one item, majority label"),
    pytest.param([[item(100 + 10 * s, 100, BOTTLE), item(300 - 10 * s, 100, CAN)] for s in range(20)],
                 {"bottle": 1, "can": 1}, id="two items crossing"),
    pytest.param([[item(100, 100), item(400, 300, BOTTLE)] if s == 3 else [item(100, 100)] for s in range(6)],
                 {"bag": 1}, id="one-frame flicker among six"),
    pytest.param(walk(600, dx=0.2, dy=0.1), {"bag": 1}, id="long lift, one item"),
])
def test_each_item_is_counted_once(frames: list[list[Row]], counts: dict[str, int]) -> None:
    recorded, _ = lift(frames)
    assert recorded.event.counts == counts
    assert recorded.event.frames == len(frames)


def test_a_lift_with_no_frame_is_clean_and_keeps_no_photo() -> None:
    recorded, _ = lift([])
    event = recorded.event
    assert (event.contaminated, event.score, event.errors, event.has_alert) == (False, 0.0, [], False)
    assert recorded.evidence is None and recorded.reason is None
    assert event.ended_at >= event.started_at


def test_an_alert_item_alerts_the_crew_once_on_its_first_frame() -> None:
    recorded, alerts = lift(walk(6, cls=BATTERY))
    assert alerts == [("battery",), (), (), (), (), ()]
    assert recorded.event.has_alert and recorded.event.score == 3.0


# One lift's items judged in every stream: a class accepted in one stream is an error in another.
ONE_OF_EACH = [[item(20 + 70 * i, 50 + 40 * (i % 2), cls) for i, cls in enumerate((BAG, BOTTLE, GLASS, ELECTRONICS))]]


@pytest.mark.parametrize(("stream", "errors", "contaminated"), [
    (Stream.recyclables, {"bag": "error", "glass": "error", "electronics": "error"}, True),
    (Stream.glass, {"bag": "error", "bottle": "error", "electronics": "error"}, True),
    (Stream.residual, {"bottle": "info", "glass": "info", "electronics": "error"}, True),
    (Stream.biowaste, {"bag": "error", "bottle": "error", "glass": "error", "electronics": "error"}, True),
])
def test_the_same_items_are_judged_by_the_stream_collected(stream: Stream, errors: dict[str, str],
                                                           contaminated: bool) -> None:
    recorded, _ = lift(ONE_OF_EACH * 3, stream)
    assert recorded.event.counts == {"bag": 1, "bottle": 1, "glass": 1, "electronics": 1}
    assert {e.class_: e.severity.value for e in recorded.event.errors} == errors
    assert recorded.event.contaminated is contaminated
    assert recorded.event.score == sum(1.0 for s in errors.values() if s == Severity.error)


def test_residual_evidence_shows_the_error_not_the_missed_recycling() -> None:
    """In the residual bin a bottle is ``info`` (missed recycling, not contamination): the photo kept
    for a lift contaminated by an appliance must show the appliance, not a frame full of bottles."""
    bottles = [item(20 + 80 * i, 40, BOTTLE) for i in range(3)]
    frames = [bottles, bottles, [item(300, 300, ELECTRONICS)], [item(300, 300, ELECTRONICS)]]
    recorded, _ = lift(frames, Stream.residual)
    assert recorded.event.contaminated and recorded.reason == "contaminated"
    assert [NAMES[c] for c in recorded.evidence.detections.class_id] == ["electronics"]


def test_an_alert_lift_keeps_the_photo_of_the_dangerous_item() -> None:
    """Two closed bags beat one battery on 'wrong items': the photo of a lift with an alert must show
    what endangered the crew (the dashboard's alerts page shows it)."""
    bags = [item(20, 40), item(200, 40)]
    frames = [bags, bags, [item(400, 300, BATTERY)], [item(400, 300, BATTERY)]]
    recorded, _ = lift(frames)
    assert recorded.event.has_alert
    assert [NAMES[c] for c in recorded.evidence.detections.class_id] == ["battery"]


def test_a_clean_residual_lift_with_missed_recycling_keeps_no_photo() -> None:
    recorded, _ = lift([[item(100, 100, BOTTLE)]] * 3, Stream.residual)
    assert not recorded.event.contaminated
    assert recorded.reason is None and recorded.evidence is None


def test_a_class_the_stream_has_no_rule_for_stops_at_the_lift_end_naming_it() -> None:
    """check_model refuses such a model at start-up; should one slip through, the lift is not judged
    against a guess."""
    from vision.rules import RulesError

    with pytest.raises(RulesError, match="sofa"):
        lift([[item(100, 100, 0)]] * 2, names=("sofa",))


def test_a_lift_longer_than_the_wire_allows_is_still_delivered() -> None:
    """A motion-triggered lift has no time limit: past MAX_FRAMES frames (11 h at 25 frames/s, a
    hopper that never stops shaking) the event failed validation and the agent stopped, lift lost.
    The frame count is capped at the bound instead; the items are what the lift is for."""
    from vision.schema import MAX_FRAMES

    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="m", version="1"))
    recorder.begin(T0, Stream.recyclables)
    recorder._frames = MAX_FRAMES  # as after a day of frames (a million add() calls take seconds)
    tracker = Tracker()
    for _ in range(2):
        recorder.add(np.zeros((48, 64, 3), np.uint8), tracker.update(Detections.from_rows([item(10, 10)])))
    event = recorder.finish(T0 + timedelta(hours=12), LiftContext("benne-01", 1)).event
    assert event.frames == MAX_FRAMES and event.counts == {"bag": 1}
