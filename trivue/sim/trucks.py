"""Full mode: simulated trucks that run the real edge agent on bursts of real waste photos.

Each truck is an ``edge.app.Agent`` built by its own factory from ``EdgeSettings`` (detector,
tracker, recorder, rules, evidence, durable outbox, MQTT uplink), as ``trivue edge`` builds it.
The simulator plays the truck's hardware: for every lift it writes a burst folder (the frames a
hopper camera box shoots at each emptying), sets the GPS receiver's fix and the RFID reader's
last tag, then lets the agent's pipeline process that burst. The one adapter is ``SimGps``, a
receiver whose fix the simulator sets (including "no fix" for a dropout); nothing in ``edge/``
is changed or bypassed.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from base.paths import REPO_ROOT, SHARED_DIR
from edge.config import EdgeSettings, load_settings
from trivue.sim.faults import FaultPlan
from trivue.sim.publisher import prefix_tag
from trivue.sim.schedule import PlannedLift
from vision.schema import GpsFix, Stream

log = logging.getLogger(__name__)

SAMPLE_IMAGES = REPO_ROOT / "trivue" / "sample" / "images"
BURST_FRAMES = 3  # stills per lift; the tracker needs an item in 2 of them to count it
SHIFT_PX = 3  # the hopper moves a little between two stills of a burst
# Hopper lights out: 4 % of the light (real photos have a mean grey of 47 at least, the agent's
# `view.dark_below` is 18) and the sensor's noise, which a camera in the dark still has (without it
# three near-black stills read as a frozen camera, not a dark one).
DARK_LIGHT, DARK_NOISE = 0.04, 3.0


@dataclass(frozen=True, slots=True)
class PhotoPool:
    """Real photos of clean and of contaminated bins for the stream collected."""

    clean: tuple[Path, ...]
    contaminated: tuple[Path, ...]
    origin: str

    @classmethod
    def from_dirs(cls, clean: Path, contaminated: Path, origin: str, *more_contaminated: Path) -> PhotoPool:
        pool = cls(_photos(clean), _photos(contaminated) + tuple(more_contaminated), origin)
        if not pool.clean or not pool.contaminated:
            raise ValueError(f"no photos in {clean if not pool.clean else contaminated}")
        return pool

    @classmethod
    def default(cls) -> PhotoPool:
        """Shared datasets (val splits) where present, else the sample committed in the repository.

        Contaminated yellow-bin lifts: closed bags, and glass, electrical items or medicines
        (glass-ewaste photos whose labels hold one of them).
        """
        shared = SHARED_DIR / "datasets"
        if (shared / "litter-items" / "images" / "val").is_dir():
            return cls.from_dirs(shared / "litter-items" / "images" / "val",
                                 shared / "hopper-bags" / "images" / "val", f"{shared} (CC BY 4.0)",
                                 *_photos_with(shared / "glass-ewaste", {"glass", "electronics", "medical"}))
        return cls.from_dirs(SAMPLE_IMAGES / "clean", SAMPLE_IMAGES / "contaminated",
                             f"{SAMPLE_IMAGES} (committed sample, CC BY 4.0)")

    def pick(self, contaminated: bool, rng: random.Random) -> Path:
        return rng.choice(self.contaminated if contaminated else self.clean)


def _photos_with(dataset: Path, classes: set[str]) -> tuple[Path, ...]:
    """Val photos of a YOLO dataset whose labels hold one of ``classes`` (none when it is absent)."""
    import yaml

    if not (dataset / "data.yaml").is_file():
        return ()
    names = yaml.safe_load((dataset / "data.yaml").read_text(encoding="utf-8")).get("names") or []
    wanted = {str(i) for i, name in enumerate(names) if name in classes}
    return tuple(photo for photo in _photos(dataset / "images" / "val")
                 if (label := dataset / "labels" / "val" / f"{photo.stem}.txt").is_file()
                 and any(line.split()[:1] and line.split()[0] in wanted for line in label.read_text().splitlines()))


def _photos(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")))


class SimGps:
    """The truck's GPS receiver as the simulator drives it: the fix of the current lift, or none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fix: GpsFix | None = None

    def set(self, fix: GpsFix | None) -> None:
        with self._lock:
            self._fix = fix

    def latest(self) -> GpsFix | None:
        with self._lock:
            return self._fix

    def at(self, when: datetime) -> GpsFix | None:
        return self.latest()  # set for this very lift, whatever its time

    def fix_age_s(self) -> float | None:
        fix = self.latest()
        return None if fix is None or fix.fix_at is None else max(0.0, (datetime.now(UTC) - fix.fix_at).total_seconds())

    def close(self) -> None:
        return None


def write_burst(folder: Path, photo: Path, taken: datetime, dark: bool = False) -> None:
    """``BURST_FRAMES`` stills of one photo, slightly shifted, stamped with the lift's time; ``dark``:
    as a camera whose hopper lights are out shoots them."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.fromfile(str(photo), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    tmp = folder.with_name(folder.name + ".part")
    tmp.mkdir(parents=True, exist_ok=True)
    for k in range(BURST_FRAMES):
        shift = np.float32([[1, 0, k * SHIFT_PX], [0, 1, k * SHIFT_PX // 2]])
        frame = cv2.warpAffine(image, shift, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        if dark:
            noise = np.random.default_rng(k).normal(0.0, DARK_NOISE, frame.shape)
            frame = np.clip(frame * DARK_LIGHT + noise, 0, 255).astype(np.uint8)
        path = tmp / f"frame-{k:02d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        stamp = taken.timestamp() + k * 0.5
        os.utime(path, (stamp, stamp))
    tmp.rename(folder)  # the agent never sees a half-written burst


class EdgeTruck:
    """One simulated truck: the real edge agent plus the simulator playing camera, GPS and RFID."""

    def __init__(self, settings: EdgeSettings, photos: PhotoPool, rng: random.Random, detector: object | None = None,
                 clock_skew_s: float = 0.0, faults: FaultPlan | None = None) -> None:
        from edge.app import Agent

        self.settings, self.photos, self.rng = settings, photos, rng
        self.skew = timedelta(seconds=clock_skew_s)  # this truck's clock is off: frames and tags carry it
        self.faults = faults or FaultPlan()  # its camera may go dark (the agent must notice by itself)
        self.bursts = Path(settings.source)
        self.bursts.mkdir(parents=True, exist_ok=True)
        self.agent = Agent.create(settings, detector)
        self.agent.gps = SimGps()

    @property
    def truck_id(self) -> str:
        return self.settings.truck_id

    def start(self) -> EdgeTruck:
        self.agent.evidence.prune()
        self.agent.uplink.start()
        return self

    def lift(self, planned: PlannedLift, at: datetime) -> str | None:
        """Shoot the burst of one lift at ``at`` and run it through the agent; returns the event id."""
        from edge.camera import burst_key, frames, throttle

        name = f"{at:%Y%m%dT%H%M%S%f}-{planned.sequence:06d}"  # unique across rounds and restarts
        write_burst(self.bursts / name, self.photos.pick(planned.contaminated, self.rng), at + self.skew,
                    dark=self.faults.camera_dark(planned.truck_id, planned.sequence))
        key = burst_key(self.bursts / name)  # what the agent marks consumed with the lift
        if planned.bin_id:
            self.agent.rfid.feed(planned.bin_id, at=at + self.skew)  # read as the bin is hooked
        self.agent.gps.set(GpsFix(**planned.gps, fix_at=at) if planned.gps else None)  # GPS time is right
        source = frames(str(self.bursts), self.agent.outbox.is_consumed, follow=False)
        self.agent.pipeline.run(throttle(source, self.settings.frame_rate))
        event_id = self._event_id(key)
        if event_id is not None:  # the camera box's card is not infinite: consumed bursts go
            shutil.rmtree(self.bursts / name, ignore_errors=True)
        return event_id

    def _event_id(self, key: str | None) -> str | None:
        if key is None:  # no photo written: nothing for the agent to count
            return None
        with sqlite3.connect(self.settings.outbox.path) as db:
            row = db.execute("SELECT event_id FROM consumed WHERE source_key = ?", (key,)).fetchone()
        return row[0] if row else None

    def finish(self, timeout_s: float) -> bool:
        return self.agent.uplink.flush(timeout_s)

    def close(self) -> None:
        self.agent.close()


def edge_settings(truck_id: str, root: Path, broker_url: str, prefix: str, stream: Stream,
                  model: Path | None = None, rules: Path | None = None) -> EdgeSettings:
    """The settings of one simulated truck: its own burst folder, outbox and evidence under ``root``;
    ``rules`` the server's sorting rules, the file a real truck of that server is given."""
    base = root / truck_id
    return load_settings(None, {
        "truck_id": truck_id, "stream": stream.value, "source": str(base / "bursts"),
        "model": str(model) if model else None, "rules": str(rules) if rules else None, "threads": 1,
        "outbox": {"path": str(base / "outbox.sqlite3")}, "evidence": {"dir": str(base / "evidence")},
        "uplink": {"broker": broker_url, "topic_prefix": prefix, "stats_interval_s": 10,
                   "client_id": f"trivue-edge-{prefix_tag(prefix)}-{truck_id}"},
        "trigger": {"kind": "burst"},
    }, environ={})


def drive(truck: EdgeTruck, lifts: list[PlannedLift], clock: Callable[[PlannedLift], datetime | None],
          on_lift: Callable[[PlannedLift, str | None], None], stop: threading.Event) -> None:
    """Play one truck's lifts; ``clock`` waits until a lift is due and says when it happens."""
    if not lifts:
        stop.wait(5)
    for planned in lifts:
        at = clock(planned)
        if at is None or stop.is_set():
            return
        try:
            on_lift(planned, truck.lift(planned, at))
        except Exception:  # one bad lift must not stop the truck (the agent's own rule)
            log.exception("%s: lift %d failed", truck.truck_id, planned.sequence)

