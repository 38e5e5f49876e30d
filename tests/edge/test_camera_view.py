"""The camera's view judged per lift (``vision.view``, ``edge.view``): real hopper photos made dark,
over-exposed, blurred, covered or frozen with OpenCV are unusable; the same photos in grey (an
infrared night light) are judged like colour ones; the truck says it in the lift and the heartbeat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.app import Agent
from edge.config import ConfigError, load_settings
from edge.outbox import EVIDENCE, LIFT
from edge.view import ViewWatch
from edge.view_settings import ViewSettings
from tests.edge.helpers import ScriptedDetector, unique_truck
from tests.edge.test_agent import BOTTLE, GLASS, settings_for
from vision.schema import EvidenceReason, ViewProblem, parse_lift_event
from vision.view import LiftView, ViewLimits, measure, small_grey

BEGAN = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def hopper_photos(shared_dir: Path) -> list[np.ndarray]:
    """Real hopper photos (bags in a hopper) and litter photos, a few of each."""
    paths = sorted((shared_dir / "datasets" / "hopper-bags" / "images" / "val").glob("*.jpg"))[:6]
    paths += sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))[:4]
    photos = [cv2.imread(str(p)) for p in paths]
    assert len(photos) == 10 and all(p is not None for p in photos)
    return photos


def dark(image: np.ndarray) -> np.ndarray:
    return (image * 0.06).astype(np.uint8)  # hopper lights failed: a few per cent of the light left


def bright(image: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(image, alpha=0.3, beta=200)  # over-exposed: washed out


def blurred(image: np.ndarray) -> np.ndarray:
    side = max(image.shape[:2]) // 15 | 1
    return cv2.GaussianBlur(image, (side, side), 0)  # a smeared, out-of-focus lens


def covered(image: np.ndarray) -> np.ndarray:
    """A plastic bag on the lens: a veil of grey light over a very blurred picture."""
    veil = cv2.GaussianBlur(image, (0, 0), max(image.shape[:2]) / 8)
    return cv2.addWeighted(veil, 0.3, np.full_like(image, 150), 0.7, 0)


def infrared(image: np.ndarray, light: float = 1.0) -> np.ndarray:
    """A night frame under an infrared light: grey, delivered as three equal channels, maybe dimmer."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor((grey * light).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def verdict(frames: list[np.ndarray]) -> ViewProblem | None:
    view = LiftView()
    view.begin()
    for frame in frames:
        view.add(frame)
    return view.verdict()


def test_real_hopper_photos_are_a_usable_view(hopper_photos) -> None:
    assert verdict(hopper_photos) is None
    assert all(LiftView().add(photo).problem(LiftView().limits) is None for photo in hopper_photos)


@pytest.mark.parametrize("light", [1.0, 0.35])
def test_a_grey_infrared_night_view_is_judged_like_a_colour_one(hopper_photos, light) -> None:
    assert verdict([infrared(p, light) for p in hopper_photos]) is None
    single = [cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) for p in hopper_photos]  # a one-channel grey camera
    assert verdict(single) is None
    # and a grey view can be unusable too: the infrared light failed
    assert verdict([dark(infrared(p)) for p in hopper_photos]) is ViewProblem.dark


@pytest.mark.parametrize(("spoil", "problem"), [(dark, ViewProblem.dark), (bright, ViewProblem.bright),
                                                (blurred, ViewProblem.blurred), (covered, ViewProblem.flat)])
def test_a_spoilt_view_is_unusable_and_says_why(hopper_photos, spoil, problem) -> None:
    assert verdict([spoil(p) for p in hopper_photos]) is problem


def test_a_frozen_camera_repeats_its_frame(hopper_photos) -> None:
    assert verdict([hopper_photos[0]] * 6) is ViewProblem.frozen
    view = LiftView()  # one-frame lifts (two bursts of the same still): the lift before is the reference
    for _ in range(2):
        view.begin()
        view.add(hopper_photos[3])
    assert view.verdict() is ViewProblem.frozen


def test_a_few_spoilt_frames_do_not_make_a_lift_unusable(hopper_photos) -> None:
    frames = [dark(p) if i < 4 else p for i, p in enumerate(hopper_photos)]  # 4 of 10: a bag flapping by
    assert verdict(frames) is None
    assert verdict([dark(p) if i < 6 else p for i, p in enumerate(hopper_photos)]) is ViewProblem.dark


def test_the_measure_is_cheap_next_to_inference(hopper_photos) -> None:
    import time

    frame = cv2.resize(hopper_photos[0], (1280, 720))
    view = LiftView()
    view.add(frame)
    started = time.perf_counter()
    for _ in range(200):
        view.add(frame)
    per_frame_ms = (time.perf_counter() - started) / 200 * 1000
    assert per_frame_ms < 1.5, per_frame_ms  # 0.06 ms measured (bench/view.py) (docs/edge.md); INT8 inference ~6 ms


def test_the_log_says_it_once_when_the_view_turns_and_once_when_it_is_back(hopper_photos, caplog) -> None:
    watch = ViewWatch(ViewSettings())
    caplog.set_level(logging.WARNING, logger="edge.view")
    lifts = [[dark(p) for p in hopper_photos[:3]]] * 4 + [hopper_photos[3:6], hopper_photos[6:9]]
    verdicts = []
    for sequence, frames in enumerate(lifts):
        watch.begin()
        for frame in frames:
            watch.add(frame)
        verdicts.append(watch.finish(sequence, BEGAN))
    assert verdicts == [ViewProblem.dark] * 4 + [None, None]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "unusable from lift 0" in messages[0] and "dark" in messages[0]
    assert "usable again at lift 4, after 4 unusable lift(s)" in messages[1]
    assert watch.state() is not None and watch.state().problem is None and watch.state().lifts == 0


def test_the_heartbeat_counts_the_unusable_lifts_in_a_row(hopper_photos) -> None:
    watch = ViewWatch(ViewSettings())
    assert watch.state() is None  # nothing judged yet
    for sequence in range(3):
        watch.begin()
        for frame in hopper_photos[:3]:
            watch.add(covered(frame))
        watch.finish(sequence, BEGAN)
    state = watch.state()
    assert state is not None and (state.problem, state.lifts, state.since) == (ViewProblem.flat, 3, BEGAN)


def test_view_settings_are_strict() -> None:
    tree = {"truck_id": "benne-1", "source": "usb:0"}
    assert load_settings(None, {**tree, "view": {"dark_below": 25}}, environ={}).view.dark_below == 25
    with pytest.raises(ConfigError, match=r"view\.dark_belo"):
        load_settings(None, {**tree, "view": {"dark_belo": 25}}, environ={})
    with pytest.raises(ConfigError, match="bright_above"):
        load_settings(None, {**tree, "view": {"dark_below": 230}}, environ={})


def test_the_truck_sends_a_dark_lift_as_not_judged(tmp_path, hopper_photos) -> None:
    """Through the agent: burst folders of a lit hopper, then of a dark one; the lifts and the heartbeat say so."""
    root = tmp_path / "bursts"
    for lift, spoil in enumerate([None, dark, dark]):
        folder = root / f"burst-{lift:03d}"
        folder.mkdir(parents=True)
        for frame, photo in enumerate(hopper_photos[3 * lift:3 * lift + 3]):
            cv2.imwrite(str(folder / f"{frame:02d}.jpg"), spoil(photo) if spoil else photo)
    settings = settings_for(tmp_path, root, "mqtt://127.0.0.1:9", unique_truck(), uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 9))
    try:
        agent.run(once=True)  # no broker: everything stays in the outbox
        events = [parse_lift_event(m.payload) for m in agent.outbox.oldest(limit=100) if m.kind == LIFT]
        stats = agent.stats()
    finally:
        agent.close()
    assert [e.view_unusable for e in events] == [None, ViewProblem.dark, ViewProblem.dark]
    assert stats.camera_view is not None and (stats.camera_view.problem, stats.camera_view.lifts) == (
        ViewProblem.dark, 2)
    assert stats.camera_view.since == events[1].started_at


def test_the_lift_that_turns_the_view_unusable_keeps_one_photo_of_it(tmp_path, hopper_photos) -> None:
    """What the technician needs to see (a bag on the lens, a dark hopper): the first lift of each unusable
    run keeps a photo with reason ``view`` when it keeps none for another reason; the next lifts of the
    run keep none; a contaminated lift keeps its own photo, with its own reason."""
    root = tmp_path / "bursts"
    spoils = [None, covered, covered, None, dark]
    for lift, spoil in enumerate(spoils):
        folder = root / f"burst-{lift:03d}"
        folder.mkdir(parents=True)
        for frame, photo in enumerate(hopper_photos[2 * lift:2 * lift + 2]):  # the ten photos, two a lift
            cv2.imwrite(str(folder / f"{frame:02d}.jpg"), spoil(photo) if spoil else photo)
    settings = settings_for(tmp_path, root, "mqtt://127.0.0.1:9", unique_truck(), uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector([[]] * 8 + [[GLASS]] * 2))
    try:
        agent.run(once=True)  # no broker: everything stays in the outbox
        rows = agent.outbox.oldest(limit=100)
    finally:
        agent.close()
    events = [parse_lift_event(m.payload) for m in rows if m.kind == LIFT]
    photos = {m.event_id: m.payload for m in rows if m.kind == EVIDENCE}
    assert [e.view_unusable for e in events] == [None, ViewProblem.flat, ViewProblem.flat, None, ViewProblem.dark]
    assert [e.evidence.reason if e.evidence else None for e in events] == [
        None, EvidenceReason.view, None, None, EvidenceReason.contaminated]
    shown = cv2.imdecode(np.frombuffer(photos[str(events[1].event_id)], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert events[1].evidence.detections == [] and measure(small_grey(shown)).problem(ViewLimits()) is ViewProblem.flat
