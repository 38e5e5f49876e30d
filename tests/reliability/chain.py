"""The real delivery chain for fault tests: edge outbox + uplink -> Mosquitto -> server ingest -> database.

Every piece is the production one: ``edge.outbox.Outbox`` and ``edge.uplink.Uplink`` on the truck
side, Mosquitto on the shipped config (deploy/mosquitto, per-truck accounts and ACL), and the
server's ``Ingest`` (in this process, or ``trivue server`` as a child process that can be killed).
``bench/chaos.py`` runs the long versions of the same scenarios with these helpers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from edge.config import load_settings as load_edge_settings
from edge.outbox import Outbox
from edge.uplink import Uplink
from server.config import ServerSettings
from server.config import load_settings as load_server_settings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox
from server.ingest.metrics import Metrics
from server.ingest.models import Evidence, Lift, StreetDay
from server.ingest.subscriber import Ingest
from server.migrate import upgrade_database
from tests.security.secured_mosquitto import SERVER_USER, SecuredMosquitto, free_port
from tests.server.events import lift_event
from vision.schema import TruckStats

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]


def photo(seed: int, size: int = 96) -> bytes:
    """A small real JPEG, different for every seed (so every photo has its own sha256)."""
    rng = np.random.default_rng(seed)
    ok, data = cv2.imencode(".jpg", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    assert ok
    return data.tobytes()


@dataclass
class Truck:
    """A truck's outbox and uplink; ``queue`` commits lifts as the pipeline does."""

    truck_id: str
    outbox: Outbox
    settings: Any
    uplink: Uplink | None = None
    sent: list[str] = field(default_factory=list)
    photos: int = 0

    @classmethod
    def make(cls, workdir: Path, broker: SecuredMosquitto, truck_id: str, max_bytes: int = 500 * 2**20,
             **uplink: Any) -> Truck:
        """``uplink`` overrides the truck's uplink settings (``delete_after``, ``receipt_timeout_s``...)."""
        url = broker.url(truck_id)
        settings = load_edge_settings(None, {"truck_id": truck_id, "source": "x",
                                             "uplink": {"broker": url, "reconnect_max_s": 2, **uplink}}, environ={})
        return cls(truck_id, Outbox(workdir / f"{truck_id}-outbox.sqlite3", max_bytes=max_bytes), settings)

    def queue(self, lifts: int, photo_every: int = 0, photo_size: int = 96) -> None:
        """Commit ``lifts`` lift events (every ``photo_every``-th with its evidence photo)."""
        for _ in range(lifts):
            sequence = self.outbox.next_sequence()
            jpeg = photo(sequence, photo_size) if photo_every and sequence % photo_every == 0 else None
            extra = {"evidence": {"sha256": hashlib.sha256(jpeg).hexdigest(), "width": photo_size,
                                  "height": photo_size}} if jpeg else {}
            event = lift_event(self.truck_id, sequence=sequence, counts={"bottle": 1, "bag": 1}, **extra)
            event_id = str(event.event_id)
            evidence = (self.settings.topic(f"evidence/{event_id}"), jpeg) if jpeg else None
            self.outbox.put_lift(event_id, (self.settings.topic("lift"), event.to_json().encode()), evidence)
            self.sent.append(event_id)
            self.photos += jpeg is not None

    def start(self) -> None:
        stats = TruckStats(truck_id=self.truck_id, sent_at=datetime.now(UTC), uptime_s=0)
        self.uplink = Uplink(self.settings, self.outbox, lambda: stats, lambda _c: None)
        self.uplink.start()

    def all_acknowledged(self) -> bool:
        """Every outbox row PUBACKed by the broker (in receipt mode they stay until the server's receipt)."""
        return self.uplink is not None and self.outbox.depth() == self.uplink.awaiting_receipt()

    def stop(self) -> None:
        if self.uplink is not None:
            self.uplink.stop()
            self.uplink = None

    def close(self) -> None:
        self.stop()
        self.outbox.close()


def server_settings(workdir: Path, broker: SecuredMosquitto, database_url: str | None = None,
                    **overrides: Any) -> ServerSettings:
    return load_server_settings(env={}, data_dir=workdir / "server", database_url=database_url,
                                broker_url=broker.url(SERVER_USER), mqtt_client_id=SERVER_USER,
                                ingest_batch_wait_ms=20, **overrides)


class InProcessServer:
    """The server's ingest in this process (what ``trivue server`` runs), on a real database."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = make_engine(settings.db_url)
        upgrade_database(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.metrics = Metrics()
        inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), self.metrics)
        self.ingest = Ingest(settings, self.sessions, inbox, self.metrics)

    def start(self) -> None:
        self.ingest.start()
        if not self.ingest.wait_connected(15):
            raise RuntimeError("the server ingest did not connect to the broker")

    def stop(self) -> None:
        self.ingest.stop()
        self.engine.dispose()


class ChildServer:
    """``trivue server`` as a child process, so that it can be killed with SIGKILL mid-ingest."""

    def __init__(self, settings: ServerSettings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVUE_")}
        values = {"data_dir": self.settings.data_dir, "database_url": self.settings.db_url,
                  "broker_url": self.settings.broker_url, "mqtt_client_id": self.settings.mqtt_client_id,
                  "port": free_port(), "ingest_batch_wait_ms": self.settings.ingest_batch_wait_ms,
                  "retention_days": 3650}
        env.update({f"TRIVUE_{k.upper()}": str(v) for k, v in values.items()})
        return env

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "trivue", "server"], env=self.environment(),
                                            stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement of what was received but not committed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@dataclass(frozen=True)
class Tally:
    """What the database holds of what the trucks sent: the figures every fault scenario reports."""

    sent: int
    stored: int
    lost: int
    duplicates: int
    aggregate_lifts: int  # sum over street_days: must equal ``stored`` (no double count)
    photos_sent: int
    photos_stored: int
    out_of_order: int  # lifts stored before a lift of a smaller sequence of the same truck

    def line(self, name: str) -> str:
        return (f"{name}: events sent {self.sent}, stored {self.stored}, lost {self.lost}, duplicates "
                f"{self.duplicates}, aggregates {self.aggregate_lifts}, photos {self.photos_stored}/"
                f"{self.photos_sent}, out of order {self.out_of_order}")


def tally(engine: Engine, trucks: list[Truck]) -> Tally:
    sent = {event_id for truck in trucks for event_id in truck.sent}
    with sessionmaker(engine)() as session:
        rows = session.execute(select(Lift.event_id, Lift.truck_id, Lift.sequence).order_by(Lift.id)).all()
        aggregate = int(session.scalar(select(func.coalesce(func.sum(StreetDay.lifts), 0))) or 0)
        photos = int(session.scalar(select(func.count()).select_from(Evidence)) or 0)
    stored = [event_id for event_id, _t, _s in rows if event_id in sent]
    highest: dict[str, int] = {}
    out_of_order = 0
    for _e, truck, sequence in rows:
        out_of_order += sequence < highest.get(truck, -1)
        highest[truck] = max(highest.get(truck, -1), sequence)
    return Tally(len(sent), len(set(stored)), len(sent - set(stored)), len(stored) - len(set(stored)), aggregate,
                 sum(t.photos for t in trucks), photos, out_of_order)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def stored_count(engine: Engine) -> int:
    with sessionmaker(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(Lift)) or 0)
