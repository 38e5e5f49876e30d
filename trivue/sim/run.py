"""One ``trivue simulate`` run: settings -> streets -> scenario -> broker -> trucks -> ground truth."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from rich.progress import Progress
from sqlalchemy.orm import Session

from base.errors import CliError
from server.command_line import DatabaseUnavailable, migrated_engine
from server.config import ConfigError, load_settings
from trivue.broker import BrokerError, BrokerHandle
from trivue.sim.contents import ContentMaker, EvidencePhotos
from trivue.sim.faults import FaultPlan
from trivue.sim.fleet import EventsRun
from trivue.sim.homes import store_synthetic, write_bin_registry
from trivue.sim.options import SimulateOptions
from trivue.sim.publisher import FleetLink, PublishError, check_reachable
from trivue.sim.scenario import Scenario, build_scenario, load_network
from trivue.sim.schedule import PlannedLift
from trivue.sim.truth import Truth
from vision.rules import RulesError, SortingRules
from vision.schema import Stream

log = logging.getLogger(__name__)


@dataclass
class SimulationRun:
    options: SimulateOptions
    db_url: str | None
    broker_url: str
    prefix: str
    truth_dir: Path
    rules_file: Path | None = None  # the server's `sorting_rules`: the trucks' file (None: the packaged one)
    known_trucks: tuple[str, ...] | None = None  # the server's truck registry (None: every truck accepted)

    @classmethod
    def from_options(cls, options: SimulateOptions) -> SimulationRun:
        try:
            # its one override named as typed: "settings" sent the operator to a file they had not given
            settings = load_settings(options.config, overrides_source="--database-url",
                                     database_url=options.database_url)
        except ConfigError as error:
            raise CliError(str(error)) from None
        db_url = None if options.streets and not options.store_households else settings.db_url
        truth = options.truth or settings.data_dir / "simulation"
        run = cls(options, db_url, options.broker or settings.broker_url, settings.topic_prefix, truth,
                  settings.sorting_rules, tuple(settings.known_trucks) if settings.known_trucks else None)
        try:
            rules = run.rules
        except RulesError as error:
            raise CliError(f"sorting_rules: {error}") from None
        stream = options.world.stream
        if stream not in rules.streams:  # a truck with this file refuses the stream: it is not collected here
            raise CliError(f"--stream {stream.value}: the sorting rules {settings.sorting_rules} have no such stream "
                           f"(collected here: {', '.join(s.value for s in rules.streams)})")
        return run

    @functools.cached_property
    def rules(self) -> SortingRules:
        """The rules the simulated trucks judge by: the server's ``sorting_rules``, as its trucks' ``rules:``."""
        return SortingRules.load(self.rules_file)

    def scenario(self) -> Scenario:
        options = self.options
        try:  # as every command acting on the server's database: bring it to the current schema
            engine = migrated_engine(self.db_url) if self.db_url else None
        except DatabaseUnavailable as error:
            raise CliError(str(error)) from None
        with Session(engine) if engine else _NoSession() as session:
            try:
                network = load_network(options.streets, options.commune, session if engine else None)
                scenario = build_scenario(network, options.world.for_days(options.days), session if engine else None)
            except ValueError as error:
                raise CliError(str(error)) from None
            if options.store_households and engine is not None:
                added = store_synthetic(session, scenario.households)
                session.commit()
                log.info("%d synthetic households stored as addresses (marked synthetic)", added)
        return scenario

    def prepare(self) -> tuple[Scenario, list[PlannedLift]]:
        """The scenario and its timed lifts (as fast as possible: the last day ends now)."""
        options = self.options
        scenario = self.scenario()
        unknown = [truck for truck in scenario.trucks if self.known_trucks and truck not in self.known_trucks]
        if unknown:  # the server will refuse them: say so before the run looks like a success
            log.warning("trucks not in the server's known_trucks: %s; their lifts will be dead letters "
                        "(unknown_truck): add them to known_trucks for a trial run", ", ".join(unknown))
        now = datetime.now(UTC)
        lifts = scenario.lifts(now, options.days, options.world.scenario.driving)
        if not lifts:
            raise CliError("the rounds hold no lift: widen --area or raise --round-km")
        if options.speed <= 0:
            end = max(lift.ended_at for lift in lifts)
            lifts = [_shift(lift, now - end) for lift in lifts]
        return scenario, lifts

    def run(self) -> int:
        planned = time.perf_counter()
        scenario, lifts = self.prepare()
        broker = self._broker()
        started = time.perf_counter()
        try:
            truth = self.play(scenario, lifts, broker)
        finally:
            if broker is not None:
                broker.stop()
        path = truth.write(self.truth_dir)
        # The bin inventory a collectivity would hold: `trivue bins import` it (with the households
        # stored as addresses, --store-households) and tagged lifts land on their addresses.
        write_bin_registry(self.truth_dir / "bins.csv", scenario.households)
        summary = truth.summary()
        took = time.perf_counter() - started
        print(f"{summary['lifts']} lifts ({summary['contaminated']} contaminated) by {len(scenario.trucks)} trucks "
              f"on {len(summary['streets'])} streets in {took:.1f} s ({summary['lifts'] / took:.0f} lifts/s, "
              f"planning {started - planned:.1f} s); faults {summary['faults'] or 'none'}; truth: {path}")
        return 0

    def _broker(self) -> BrokerHandle | None:
        if not self.options.embedded_broker:
            return None
        parts = urlsplit(self.broker_url)
        try:
            return BrokerHandle(parts.hostname or "127.0.0.1", parts.port or 1883).start()
        except BrokerError as error:
            raise CliError(str(error)) from None

    def play(self, scenario: Scenario, lifts: list[PlannedLift], broker: BrokerHandle | None = None) -> Truth:
        """Publish the lifts (events or full mode) with the fault plan; returns the ground truth."""
        options = self.options
        stream = options.world.stream
        rates = {street.key: rate for street, rate in scenario.rates.items()}
        settings = {"mode": options.mode, "seed": options.world.seed, "trucks": scenario.trucks,
                    "stream": stream.value, "days": options.days, "bad_streets": [s.name for s in scenario.bad_streets]}
        truth = Truth(settings, rates)
        faults = options.faults.with_skews(scenario.trucks, random.Random(options.world.seed))
        if faults.dark is not None and faults.dark.truck_id not in scenario.trucks:
            raise CliError(f"--camera-dark {faults.dark.truck_id}: no such truck (simulated: "
                           f"{', '.join(scenario.trucks)})")
        restart = None
        if broker is not None:  # after a restart, go on once the server receives the trucks' lifts again
            restart = functools.partial(broker.restart, resubscribed=f"{self.prefix}/{scenario.trucks[0]}/lift")
        if options.mode == "events":
            self._events(scenario, lifts, stream, faults, truth, restart)
        else:
            # Full mode runs the edge agent (onnxruntime, OpenCV): loaded only when asked for.
            from trivue.sim.fullmode import FullRun

            try:
                check_reachable(self.broker_url)
            except PublishError as error:
                raise CliError(str(error)) from None
            FullRun(self, scenario, stream, truth, faults, broker).play(lifts, options.speed)
        return truth

    def _events(self, scenario: Scenario, lifts: list[PlannedLift], stream: Stream, faults: FaultPlan, truth: Truth,
                restart: Callable[[], None] | None) -> None:
        contents = ContentMaker(self.rules, stream)
        photos = None
        if self.options.evidence_photos is not None:
            try:
                photos = EvidencePhotos(sorted(self.options.evidence_photos.glob("*")))
            except ValueError as error:
                raise CliError(f"--evidence-photos {self.options.evidence_photos}: {error}") from None
        try:
            link = FleetLink(self.broker_url, self.prefix, scenario.trucks, self.options.connections).start()
        except PublishError as error:
            raise CliError(str(error)) from None
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task(f"{len(scenario.trucks)} trucks publishing", total=len(lifts))
                run = EventsRun(link, contents, faults, truth, scenario.rng, restart, photos)
                run.run(lifts, self.options.speed, lambda: progress.advance(task))
                progress.update(task, description="waiting for the broker's acknowledgements")
                if not link.flush(60):
                    raise CliError(f"{link.unacked} message{'' if link.unacked == 1 else 's'} not acknowledged by "
                                   f"{self.broker_url} in 60 s")
        finally:
            link.stop()


class _NoSession:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _shift(lift: PlannedLift, delta: timedelta) -> PlannedLift:
    return replace(lift, started_at=lift.started_at + delta, ended_at=lift.ended_at + delta)
