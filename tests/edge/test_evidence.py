"""Evidence photos: nothing recognisable outside the hopper, downscaled, boxes as data (not drawn), kept N days."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import EvidenceSettings
from edge.evidence import EvidenceStore, hide_outside
from vision.detection import Detections
from vision.lift import EvidenceFrame
from vision.region import Region
from vision.schema import EvidenceReason

LEFT_HALF = Region.from_points([(0, 0), (0.5, 0), (0.5, 1), (0, 1)])


@pytest.fixture
def photo(litter_val_images: list[Path]) -> np.ndarray:
    return cv2.resize(cv2.imread(str(litter_val_images[2])), (800, 600))


@pytest.mark.parametrize("mode", ["blur", "black"])
def test_outside_is_hidden_inside_untouched(photo: np.ndarray, mode: str) -> None:
    hidden = hide_outside(photo, LEFT_HALF, mode)
    np.testing.assert_array_equal(hidden[:, :395], photo[:, :395])
    outside, original = hidden[:, 410:], photo[:, 410:]
    detail = cv2.Laplacian(cv2.cvtColor(original, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    left = cv2.Laplacian(cv2.cvtColor(outside, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert left < detail / 20  # faces and plates out there are no longer readable
    if mode == "black":
        assert outside.max() == 0


def test_render_and_retention(tmp_path: Path, photo: np.ndarray) -> None:
    settings = EvidenceSettings(dir=tmp_path / "ev", max_side=400, retention_days=7)
    store = EvidenceStore(settings, LEFT_HALF, ("bottle", "battery"))
    frame = EvidenceFrame(photo, Detections.from_rows([(100, 100, 300, 300, 0.9, 1)]))
    rendered = store.render(frame, EvidenceReason.uncertain)
    image = cv2.imdecode(np.frombuffer(rendered.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (300, 400, 3) and (rendered.evidence.width, rendered.evidence.height) == (400, 300)
    assert rendered.evidence.sha256 == hashlib.sha256(rendered.jpeg).hexdigest()
    # the box travels as fractions of the photo, with its class and confidence ...
    assert rendered.evidence.reason is EvidenceReason.uncertain
    (box,) = rendered.evidence.detections
    assert box.class_ == "battery"
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((0.125, 1 / 6, 0.375, 0.5), abs=1e-5)
    assert box.confidence == pytest.approx(0.9)
    # ... and is not drawn: the photo inside the hopper is the camera's (it is training material)
    inside = cv2.resize(photo, (400, 300), interpolation=cv2.INTER_AREA)[60:140, 45:55].astype(int)
    assert np.abs(image[60:140, 45:55].astype(int) - inside).mean() < 12  # JPEG noise only, no red line
    kept = store.keep("event-1", rendered)
    stale = settings.dir / "2020-01-01"
    stale.mkdir()
    old = store.keep("event-0", rendered).rename(stale / "event-0.jpg")
    os.utime(old, (time.time() - 8 * 86400,) * 2)
    assert store.prune() == 1 and kept.exists() and not stale.exists()


class FakeClock:
    """Wall-clock seconds that a test moves forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_scheduled_pruning_deletes_photos_after_the_default_seven_days(tmp_path: Path, photo: np.ndarray) -> None:
    """No new photo needed: the pruner runs on its own schedule (a parked truck keeps its agent up)."""
    clock = FakeClock()
    store = EvidenceStore(EvidenceSettings(dir=tmp_path / "ev"), LEFT_HALF, ("bottle",), clock=clock)
    kept = store.keep("event-1", store.render(EvidenceFrame(photo, Detections.from_rows([]))))
    store.start_pruning(every_s=0.01)
    try:
        clock.now += 6.9 * 86_400  # within the 7 days: every pass keeps it
        seen = store.prune_passes
        assert wait_for(lambda: store.prune_passes >= seen + 2)  # two whole passes after the clock moved
        assert kept.exists()
        clock.now += 0.2 * 86_400  # 7.1 days old
        assert wait_for(lambda: not kept.exists()), "the scheduled pass did not delete a 7.1-day-old photo"
        assert wait_for(lambda: not kept.parent.exists())  # the empty day folder goes too
    finally:
        store.stop_pruning()
    passes = store.prune_passes
    clock.now += 1.0
    time.sleep(0.05)
    assert store.prune_passes == passes  # stopped means stopped


def test_the_agent_prunes_on_a_schedule_while_it_runs(tmp_path: Path, photo: np.ndarray, monkeypatch) -> None:
    from edge.app import Agent
    from tests.edge.helpers import ScriptedDetector
    from tests.edge.test_agent import settings_for

    monkeypatch.setattr("edge.evidence.PRUNE_EVERY_S", 0.01)
    (tmp_path / "bursts").mkdir()
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", "test-prune",
                            uplink={"flush_timeout_s": 1})
    agent = Agent.create(settings, detector=ScriptedDetector([]))
    clock = FakeClock()
    agent.evidence._clock = clock
    old = agent.evidence.keep("event-0", agent.evidence.render(EvidenceFrame(photo, Detections.from_rows([]))))
    try:
        assert agent.run(once=True) == 0  # no lift: nothing to deliver; the pruner keeps running until close
        clock.now += 8 * 86_400
        assert wait_for(lambda: not old.exists()), "the running agent never pruned the 8-day-old photo"
    finally:
        agent.close()


@pytest.fixture
def noise() -> np.ndarray:
    """The worst case for JPEG: pixels with no pattern at all (a photo of gravel, of rain on the lens)."""
    return np.random.default_rng(7).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)


def test_photos_are_re_encoded_under_the_byte_cap(tmp_path: Path, noise: np.ndarray) -> None:
    cap = 150_000
    store = EvidenceStore(EvidenceSettings(dir=tmp_path / "ev", max_side=1600, max_bytes=cap), LEFT_HALF,
                          ("bottle", "battery"))
    frame = EvidenceFrame(noise, Detections.from_rows([(100, 100, 300, 300, 0.9, 1)]))
    _ok, first = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert first.size > 3 * cap  # the configured encoding would be far over the cap
    photo = store.render(frame)
    assert photo is not None and len(photo.jpeg) <= cap
    image = cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (image.shape[1], image.shape[0]) == (photo.evidence.width, photo.evidence.height)
    assert photo.evidence.width / photo.evidence.height == pytest.approx(4 / 3, rel=0.01)
    assert photo.evidence.sha256 == hashlib.sha256(photo.jpeg).hexdigest()
    # the blur outside the hopper is redone at the smaller size: the right half still has no detail
    right = cv2.Laplacian(cv2.cvtColor(image[:, image.shape[1] // 2 + 10:], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    left = cv2.Laplacian(cv2.cvtColor(image[:, : image.shape[1] // 2 - 10], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert right < left / 20


def test_a_photo_that_cannot_fit_the_cap_is_left_out(tmp_path: Path, noise: np.ndarray) -> None:
    store = EvidenceStore(EvidenceSettings(dir=tmp_path / "ev", max_bytes=10_000, outside="blur"),
                          Region.from_points([(0, 0), (1, 0), (1, 1), (0, 1)]), ("bottle",))
    # noise in 5x5 blocks: still noise once shrunk to the smallest side tried (320 px)
    coarse = cv2.resize(noise[:240, :320], (1600, 1200), interpolation=cv2.INTER_NEAREST)
    assert store.render(EvidenceFrame(coarse, Detections.from_rows([]))) is None


def test_the_default_cap_is_well_under_the_shipped_broker_limit() -> None:
    conf = (Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    (limit,) = [int(line.split()[1]) for line in conf.splitlines() if line.startswith("max_packet_size ")]
    assert EvidenceSettings().max_bytes <= limit // 2  # room for MQTT framing, TLS, and a lower-limit broker
    assert EvidenceSettings().max_bytes <= 2 * 1024 * 1024  # the server's default max_evidence_bytes


def _characters(image: np.ndarray) -> np.ndarray:
    """The band where a plate's letters live (strokes to whole characters), in grey."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float) if image.ndim == 3 else image
    return cv2.GaussianBlur(grey, (0, 0), 4) - cv2.GaussianBlur(grey, (0, 0), 20)


def _wiener(grey: np.ndarray, sigma: float, k: float) -> np.ndarray:
    """Deconvolution by a Gaussian of ``sigma`` px: what anyone with the photo can try."""
    fy, fx = np.fft.fftfreq(grey.shape[0])[:, None], np.fft.fftfreq(grey.shape[1])[None, :]
    mtf = np.exp(-2 * np.pi**2 * sigma**2 * (fx**2 + fy**2))
    return np.real(np.fft.ifft2(np.fft.fft2(grey) * mtf / (mtf**2 + k)))


def test_a_plate_near_the_camera_cannot_be_deblurred_back() -> None:
    """A number plate outside the hopper, close to the lens (letters 1/8 of the frame): under the old
    Gaussian (1/40 of the side) a Wiener deconvolution made it readable again (correlation 0.66 with
    the letters); the mosaic leaves nothing of them to recover."""
    plate = np.full((720, 960, 3), 230, np.uint8)
    cv2.putText(plate, "AB-123-CD", (60, 420), cv2.FONT_HERSHEY_SIMPLEX, 4.0, (0, 0, 0), 10)
    nowhere = Region.from_points([(0, 0), (0.001, 0), (0, 0.001)])  # the whole frame is outside
    _ok, jpeg = cv2.imencode(".jpg", hide_outside(plate, nowhere, "blur"), [cv2.IMWRITE_JPEG_QUALITY, 95])
    grey = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY).astype(float)
    letters = _characters(plate).ravel()
    best = max(float(np.corrcoef(letters, _characters(_wiener(grey, sigma, k)).ravel())[0, 1])
               for sigma in (8, 16, 24, 32) for k in (1e-2, 1e-3, 1e-4))
    assert best < 0.3


@pytest.mark.parametrize("shape", [(480, 640), (2, 3, 3)])
def test_grey_four_channel_and_tiny_frames_still_give_a_hidden_photo(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """A grey frame failed the blur (the lift went without its photo), a 2x3 one failed the resize."""
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    store = EvidenceStore(EvidenceSettings(dir=tmp_path / "ev"), LEFT_HALF, ("bottle",))
    photo = store.render(EvidenceFrame(image, Detections.from_rows([])))
    assert photo is not None
    decoded = cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (shape[0], shape[1], 3)


def test_a_hopper_covering_the_whole_frame_is_said_at_start_up(tmp_path: Path, caplog) -> None:
    # The shipped default hopper is the whole frame: nothing is outside it, so nothing is blurred and
    # the street, the crew and passers-by leave the truck sharp. The operator must hear of it.
    whole = Region.from_points([(0, 0), (1, 0), (1, 1), (0, 1)])
    with caplog.at_level("WARNING", logger="edge.evidence"):
        EvidenceStore(EvidenceSettings(dir=tmp_path / "a"), whole, ("bottle",))
    assert "hopper" in caplog.text and "not blurred" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="edge.evidence"):
        EvidenceStore(EvidenceSettings(dir=tmp_path / "b"), LEFT_HALF, ("bottle",))
    assert not caplog.text
