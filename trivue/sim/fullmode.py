"""``trivue simulate --mode full``: one thread per truck, each running its own edge agent.

Faults in full mode are those a truck's own software must absorb: clock skew (the truck stamps
its frames and RFID reads with a wrong clock; the GPS time stays right) and broker restarts (the
agents' outboxes keep every lift until the new broker acknowledges it). Outages, duplicates and
malformed messages are events-mode faults: they test the server, not the agent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from base.errors import CliError
from trivue.broker import BrokerHandle
from trivue.sim.faults import FaultPlan
from trivue.sim.options import SimulateOptions
from trivue.sim.scenario import Scenario
from trivue.sim.schedule import PlannedLift
from trivue.sim.trucks import EdgeTruck, PhotoPool, drive, edge_settings
from trivue.sim.truth import Truth
from vision.model import DetectorError
from vision.schema import Stream

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 60.0


class Pace:
    """When each lift happens: as planned (speed 0) or now, after waiting ``1/speed`` of the planned gap."""

    def __init__(self, lifts: list[PlannedLift], speed: float, stop: threading.Event) -> None:
        self.t0 = min((x.started_at for x in lifts), default=datetime.now(UTC))
        self.speed, self.stop = speed, stop
        self.wall0 = time.monotonic()

    def at(self, planned: PlannedLift) -> datetime | None:
        if self.speed <= 0:
            return None if self.stop.is_set() else planned.started_at
        due = self.wall0 + (planned.started_at - self.t0).total_seconds() / self.speed
        if self.stop.wait(max(0.0, due - time.monotonic())):
            return None
        return datetime.now(UTC)


class RunTarget(Protocol):
    """What a full-mode run needs of ``trivue.sim.run.SimulationRun``: its options and destinations."""

    options: SimulateOptions
    broker_url: str
    prefix: str
    truth_dir: Path
    rules_file: Path | None


class FullRun:
    """Builds one edge agent per truck, plays their lifts in parallel, collects the truth."""

    def __init__(self, run: RunTarget, scenario: Scenario, stream: Stream, truth: Truth, faults: FaultPlan,
                 broker: BrokerHandle | None) -> None:
        if faults.outages or faults.duplicates or faults.malformed:
            raise CliError("--outage, --duplicates and --malformed are events-mode faults (they test the "
                           "server); full mode takes --clock-skew, --broker-restart and --camera-dark")
        if faults.broker_restarts and broker is None:
            raise CliError("--broker-restart needs --embedded-broker (the simulator must own the broker)")
        self.truth, self.faults, self.broker = truth, faults, broker
        self.lift_topic = f"{run.prefix}/{scenario.trucks[0]}/lift"  # what the server subscribes to
        self.restarts = sorted(faults.broker_restarts)
        if not run.options.verbose:  # a line per lift from every agent would bury the progress bar
            logging.getLogger("edge").setLevel(logging.WARNING)
        self.stop, self.restart_due = threading.Event(), threading.Event()
        self.gate = threading.Condition()  # closed (open False) while the broker restarts
        self.open, self.active = True, 0  # lifts started and not yet done
        options = run.options
        try:
            photos = PhotoPool.from_dirs(*options.images, "--images") if options.images else PhotoPool.default()
            self.trucks = [EdgeTruck(edge_settings(t, run.truth_dir / "trucks", run.broker_url, run.prefix,
                                                   stream, options.model, run.rules_file), photos,
                                     random.Random(f"{options.world.seed}:{t}"),
                                     clock_skew_s=faults.skews.get(t, 0.0), faults=faults).start()
                           for t in scenario.trucks]
        except (ValueError, OSError, DetectorError) as error:  # config, model or rules: the agent's own words
            raise CliError(str(error)) from None

    def play(self, lifts: list[PlannedLift], speed: float) -> None:
        from rich.progress import Progress

        pace = Pace(lifts, speed, self.stop)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{len(self.trucks)} edge agents", total=len(lifts))

            def done(planned: PlannedLift, event_id: str | None) -> None:
                with self.gate:
                    dark = self.faults.camera_dark(planned.truck_id, planned.sequence)
                    self.truth.add(planned, event_id or "", {}, self.faults.skews.get(planned.truck_id, 0.0),
                                   False, 0.0, "dark" if dark else None)
                    progress.advance(task)
                    self.active -= 1
                    if self.restarts and (planned.started_at - pace.t0).total_seconds() >= self.restarts[0]:
                        self.restart_due.set()
                    self.gate.notify_all()

            try:
                self._run_threads(lifts, self._gated(pace), done)
                progress.update(task, description="waiting for the broker's acknowledgements")
                unsent = [t.truck_id for t in self.trucks if not t.finish(ACK_TIMEOUT_S)]
            finally:
                self.stop.set()
                for truck in self.trucks:
                    truck.close()
        if unsent:
            # The agents keep a lift until the server's receipt (uplink.delete_after: receipt), as
            # trucks do: with no server ingesting from the broker, none ever comes.
            raise CliError(f"lifts of {', '.join(unsent)} not acknowledged in {ACK_TIMEOUT_S:g} s; they stay in "
                           f"their outboxes. The edge agents wait for the server's receipts: is a `trivue server` "
                           f"ingesting from {self.lift_topic.rsplit('/', 2)[0]}/# on this broker?")

    def _gated(self, pace: Pace) -> Callable[[PlannedLift], datetime | None]:
        """``pace.at`` behind a gate that a broker restart closes: no lift starts while it is closed."""
        def at(planned: PlannedLift) -> datetime | None:
            with self.gate:
                self.gate.wait_for(lambda: self.open or self.stop.is_set())
                self.active += 1
            return pace.at(planned)
        return at

    def _run_threads(self, lifts: list[PlannedLift], at: Callable[[PlannedLift], datetime | None],
                     done: Callable[[PlannedLift, str | None], None]) -> None:
        threads = [threading.Thread(target=drive, daemon=True, name=truck.truck_id,
                                    args=(truck, [x for x in lifts if x.truck_id == truck.truck_id], at,
                                          done, self.stop)) for truck in self.trucks]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            if self.restart_due.wait(0.2):
                self._restart()
        for thread in threads:
            thread.join()

    def _restart(self) -> None:
        """Restart the broker with nothing in flight, then let the server subscribe again first.

        The embedded broker forgets every session when it restarts (Mosquitto with persistence
        would not), so a lift published before the server is back would reach nobody.
        """
        with self.gate:
            self.open = False
            self.gate.wait_for(lambda: self.active <= 0, timeout=60)
        for truck in self.trucks:
            truck.finish(30)
        log.info("fault: restarting the broker (simulated time %.0f s)", self.restarts.pop(0))
        assert self.broker is not None  # checked in __init__: restarts need the embedded broker
        self.broker.restart(resubscribed=self.lift_topic)  # returns once the server has subscribed again
        self.truth.faults["broker_restarts"] += 1
        with self.gate:
            self.restart_due.clear()
            self.open = True
            self.gate.notify_all()
