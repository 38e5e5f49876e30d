"""Real trucks for the fleet and field-loop tests: ``trivue edge`` processes on burst folders of real photos.

A burst folder is one lift, delivered at its last photo (``edge.camera``, ``Frame.ends_lift``):
a test adds bursts one by one and reads the lifts the server stored, each naming the model
that judged it. A frame's capture time is its file's mtime (``edge.camera``), so a burst can be
dated: a truck replaying last week's bursts sends last week's lifts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from base.paths import REPO_ROOT
from server.ingest.models import Lift
from tests.fleet.conftest import Fleet, dump, stats_of, wait_until
from tests.fleet.models import SHIPPED
from vision.selfcheck import CALIBRATION_DIR

PHOTOS = sorted(CALIBRATION_DIR.glob("*.jpg"))


class TruckProcess:
    """``trivue edge`` on a burst folder, with its token file and models folder; ``extra`` settings
    replace the defaults (``evidence`` is merged: its folder stays the truck's own)."""

    def __init__(self, fleet: Fleet, root: Path, truck_id: str, token: str, **extra: Any) -> None:
        self.fleet, self.truck_id, self.root = fleet, truck_id, root / truck_id
        self.bursts = self.root / "bursts"
        self.bursts.mkdir(parents=True)
        self.token_file = self.root / "token"
        self.token_file.write_text(token)
        self.models_dir = self.root / "models"
        settings = fleet.settings
        config = {
            "truck_id": truck_id, "source": str(self.bursts), "stream": "recyclables", "model": str(SHIPPED),
            "workers": 1, "threads": 1, "frame_rate": 50, "gps": {"source": "fixed:48.1113,-1.6800"},
            "trigger": {"kind": "burst", "burst_settle_s": 0.3},
            "outbox": {"path": str(self.root / "outbox.sqlite3")},
            "uplink": {"broker": settings.broker_url, "topic_prefix": settings.topic_prefix, "reconnect_max_s": 1,
                       "stats_interval_s": 0.5},
            "models": {"server": fleet.url, "token_file": str(self.token_file), "dir": str(self.models_dir)},
            **extra,
            "evidence": {"dir": str(self.root / "evidence"), **extra.get("evidence", {})},
        }
        path = self.root / "truck.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = open(self.root / "agent.log", "wb")  # noqa: SIM115  (closed in stop)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TRIVUE_DATA_DIR": str(self.root / "data")}
        self.process = subprocess.Popen([sys.executable, "-m", "trivue", "edge", "--config", str(path)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.added = 0

    def lift(self, photos: Sequence[Path] | None = None, taken: datetime | None = None) -> None:
        """One more burst (written aside, then moved in whole): ``photos`` as its frames, by default
        the next two calibration photos; ``taken`` dates its frames (default: now)."""
        staging = self.root / f"staging-{self.added:03d}"
        staging.mkdir()
        frames = photos or [PHOTOS[(2 * self.added + i) % len(PHOTOS)] for i in range(2)]
        for i, photo in enumerate(frames):
            shutil.copy(photo, frame := staging / f"{i:02d}.jpg")
            if taken is not None:
                os.utime(frame, (taken.timestamp() + i * 0.2,) * 2)
        staging.rename(self.bursts / f"burst-{self.added:03d}")
        self.added += 1

    def versions(self) -> list[str]:
        with self.fleet.sessions() as session:
            return list(session.scalars(select(Lift.model_version).where(Lift.truck_id == self.truck_id)
                                        .order_by(Lift.sequence)))

    def lifts(self, count: int) -> list[str]:
        """The model version of each stored lift, once ``count`` are stored."""
        return wait_until(lambda: len(v := self.versions()) >= count and v, f"{count} lifts of {self.truck_id}: "
                          f"{self.versions()}; {self.tail()}")

    def update(self, sha: str, state: str) -> dict[str, Any]:
        """The truck's heartbeat once its last model change is ``sha`` in ``state``."""
        def check() -> dict[str, Any] | None:
            stats = stats_of(self.fleet, self.truck_id)
            update = stats.get("model_update") or {}
            return stats if update.get("sha256") == sha and update.get("state") == state else None

        return wait_until(check, f"{self.truck_id}: model {sha[:12]} {state}; stats "
                          f"{dump(stats_of(self.fleet, self.truck_id).get('model_update'))}; {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return (self.root / "agent.log").read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


class Trucks:
    """Starts trucks, each with its own token; stops them all at the end of the test."""

    def __init__(self, fleet: Fleet, root: Path) -> None:
        self.fleet, self.root, self.started = fleet, root, list[TruckProcess]()
        self.tag = uuid.uuid4().hex[:6]

    def start(self, suffix: str, **extra: Any) -> TruckProcess:
        truck_id = f"fleet-{self.tag}-{suffix}"
        truck = TruckProcess(self.fleet, self.root, truck_id, self.fleet.token("truck", truck_id), **extra)
        self.started.append(truck)
        return truck
