"""Events-only mode: a simulated fleet publishing already-judged LiftEvents straight to MQTT.

No camera and no model: each planned lift becomes the LiftEvent a truck with a perfect detector
would send (contents drawn by ``trivue.sim.contents``, judged by the real sorting rules), published at
the pace of the simulated clock (or as fast as the broker takes them), with the faults of the
plan applied. Cheap enough for thousands of trucks.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from base.version import __version__
from trivue.sim.contents import ContentMaker, EvidencePhotos
from trivue.sim.faults import FaultPlan, malformed_payload
from trivue.sim.publisher import FleetLink
from trivue.sim.schedule import PlannedLift
from trivue.sim.truth import Truth
from vision.camera_view import CameraView, ViewProblem
from vision.rules import Verdict
from vision.schema import GpsFix, LiftEvent, ModelInfo, Stream, TruckStats

log = logging.getLogger(__name__)

SIM_MODEL = ModelInfo(name="trivue-simulator", version=__version__)
STATS_EVERY = 25  # lifts between two heartbeats of a truck


def lift_event(lift: PlannedLift, stream: Stream, counts: dict[str, int], verdict: Verdict, skew_s: float) -> LiftEvent:
    shift = timedelta(seconds=skew_s)
    gps = GpsFix(**lift.gps, fix_at=lift.started_at + shift) if lift.gps else None
    return LiftEvent(truck_id=lift.truck_id, sequence=lift.sequence, stream=stream,
                     started_at=lift.started_at + shift, ended_at=lift.ended_at + shift, gps=gps,
                     bin_id=lift.bin_id, counts=counts, errors=list(verdict.errors),
                     contaminated=verdict.contaminated, score=verdict.score,
                     model=SIM_MODEL, frames=0)


class EventsRun:
    """Publishes a day of planned lifts in time order, applying the fault plan."""

    def __init__(self, link: FleetLink, contents: ContentMaker, faults: FaultPlan, truth: Truth,
                 rng: random.Random, restart_broker: Callable[[], None] | None = None,
                 photos: EvidencePhotos | None = None) -> None:
        self.link, self.contents, self.faults, self.truth, self.rng = link, contents, faults, truth, rng
        self.restart_broker, self.photos = restart_broker, photos
        self.held: dict[str, deque[tuple[LiftEvent, PlannedLift, dict[str, int], float, bytes | None]]] = \
            defaultdict(deque)
        self.lifts_of: dict[str, int] = defaultdict(int)
        self.views: dict[str, CameraView] = {}  # a truck's camera view at its last lift (dark camera fault)
        self.started = time.monotonic()

    def run(self, lifts: list[PlannedLift], speed: float, on_lift: Callable[[], None] = lambda: None,
            stop: threading.Event | None = None) -> None:
        """Publish ``lifts`` in time order; with ``speed`` > 0 at that pace, stamped with the real time."""
        lifts = sorted(lifts, key=lambda lift: lift.started_at)
        stop = stop or threading.Event()
        if not lifts:
            stop.wait(5)
            return
        t0, wall0 = lifts[0].started_at, time.monotonic()
        restarts = sorted(self.faults.broker_restarts)
        for lift in lifts:
            t_s = (lift.started_at - t0).total_seconds()
            if speed > 0:
                if stop.wait(max(0.0, wall0 + t_s / speed - time.monotonic())):
                    return
                now = datetime.now(UTC)
                lift = replace(lift, started_at=now, ended_at=now + (lift.ended_at - lift.started_at))
            while restarts and restarts[0] <= t_s:
                self._restart(restarts.pop(0))
            self._release(t_s)
            self._one(lift, t_s)
            on_lift()
        self._release(float("inf"))

    def _one(self, lift: PlannedLift, t_s: float) -> None:
        skew = self.faults.skews.get(lift.truck_id, 0.0)
        contents = self.contents.draw(lift.contaminated, self.rng)
        dark = self.faults.camera_dark(lift.truck_id, lift.sequence)
        if dark:  # the camera saw nothing: the truck counts nothing and says why (its contents stay unknown)
            nothing = self.contents.rules.judge(self.contents.stream, {})
            event = lift_event(lift, self.contents.stream, {}, nothing, skew)
            event = event.model_copy(update={"view_unusable": ViewProblem.dark})
            self.truth.faults["camera_dark_lifts"] += 1
        else:
            event = lift_event(lift, self.contents.stream, contents.counts, contents.verdict, skew)
        went_dark = self._look(lift, dark)
        photo = None
        if self.photos is not None and self.photos.wanted(event.errors):
            photo, evidence = self.photos.pick(self.rng)
            event = event.model_copy(update={"evidence": evidence})
        window = self.faults.offline(lift.truck_id, t_s)
        if window is not None:
            self.held[lift.truck_id].append((event, lift, contents.counts, t_s, photo))
            return
        self._send(event, lift, contents.counts, 0.0, photo)
        if went_dark:  # heartbeats go every STATS_EVERY lifts: the fleet page learns it now
            self._stats(lift.truck_id)

    def _send(self, event: LiftEvent, lift: PlannedLift, counts: dict[str, int], held_s: float,
              photo: bytes | None = None) -> None:
        payload = event.to_json()
        self.link.publish(lift.truck_id, "lift", payload)
        if photo is not None:
            self.link.publish(lift.truck_id, f"evidence/{event.event_id}", photo)
        duplicated = self.rng.random() < self.faults.duplicates
        if duplicated:
            self.link.publish(lift.truck_id, "lift", payload)
            self.truth.faults["duplicates_sent"] += 1
        if self.rng.random() < self.faults.malformed:
            kind = self.truth.faults["malformed_sent"]
            self.link.publish(lift.truck_id, "lift", malformed_payload(kind, lift.truck_id, payload))
            self.truth.faults["malformed_sent"] += 1
        self.truth.add(lift, str(event.event_id), counts, self.faults.skews.get(lift.truck_id, 0.0),
                       duplicated, held_s, event.view_unusable)
        self.lifts_of[lift.truck_id] += 1
        if self.lifts_of[lift.truck_id] % STATS_EVERY == 1:
            self._stats(lift.truck_id)

    def _look(self, lift: PlannedLift, dark: bool) -> bool:
        """The heartbeat's ``camera_view`` after this lift, as the agent's ``edge.view`` keeps it;
        True when the view has just become unusable."""
        before = self.views.get(lift.truck_id) or CameraView()
        after = self.views[lift.truck_id] = before.after(ViewProblem.dark if dark else None, lift.started_at)
        return after.problem is not None and after.problem != before.problem

    def _release(self, t_s: float) -> None:
        for truck_id, queue in self.held.items():
            if queue and self.faults.offline(truck_id, t_s) is None:
                self.truth.faults["outage_deliveries"] += len(queue)
                while queue:
                    event, lift, counts, held_at, photo = queue.popleft()
                    self._send(event, lift, counts, (t_s if t_s != float("inf") else held_at) - held_at, photo)

    def _restart(self, at_s: float) -> None:
        if self.restart_broker is None:
            log.warning("broker restart at %.0f s skipped: the simulator does not run the broker "
                        "(use --embedded-broker)", at_s)
            return
        log.info("fault: restarting the broker (simulated time %.0f s)", at_s)
        # The embedded broker forgets every session when it restarts (Mosquitto with persistence
        # would not): drain first; the restart returns once the server has subscribed again.
        self.link.flush(30)
        self.restart_broker()
        self.truth.faults["broker_restarts"] += 1
        if not self.link.wait_connected(30):
            log.warning("trucks not reconnected 30 s after the broker restart")

    def _stats(self, truck_id: str) -> None:
        stats = TruckStats(truck_id=truck_id, sent_at=datetime.now(UTC), uptime_s=time.monotonic() - self.started,
                           model=SIM_MODEL, stream=self.contents.stream, lifts_total=self.lifts_of[truck_id],
                           outbox_depth=len(self.held.get(truck_id, ())), camera_view=self.views.get(truck_id))
        self.link.publish(truck_id, "stats", stats.model_dump_json(), tracked=False)
