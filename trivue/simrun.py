"""One ``trivue simulate`` run: settings -> streets -> scenario -> broker -> trucks -> ground truth."""

from __future__ import annotations

import argparse
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from base.errors import CliError
from trivue.simulate import fault_plan, options_from, stream_of

log = logging.getLogger(__name__)


@dataclass
class SimulationRun:
    args: argparse.Namespace
    db_url: str | None
    broker_url: str
    prefix: str
    truth_dir: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SimulationRun:
        from server.config import ConfigError, load_settings

        try:
            settings = load_settings(args.config, database_url=args.database_url)
        except ConfigError as error:
            raise CliError(str(error)) from None
        db_url = None if args.streets and not args.store_households else settings.db_url
        truth = args.truth or settings.data_dir / "simulation"
        return cls(args, db_url, args.broker or settings.broker_url, settings.topic_prefix, truth)

    def scenario(self) -> Any:
        from sqlalchemy.orm import Session

        from server.db import make_engine
        from server.migrate import upgrade_database
        from trivue.households import store_synthetic
        from trivue.scenario import build_scenario, load_network

        args = self.args
        engine = make_engine(self.db_url) if self.db_url else None
        if engine is not None:
            logging.getLogger("alembic").setLevel(logging.WARNING)
            try:  # as every command acting on the server's database: bring it to the current schema
                upgrade_database(engine)
            except Exception as error:  # unreachable or foreign database: one line, not a traceback
                raise CliError(f"database {engine.url.render_as_string(hide_password=True)}: {error}") from None
        with Session(engine) if engine else _NoSession() as session:
            try:
                network = load_network(args.streets, args.commune, session if engine else None)
                scenario = build_scenario(network, options_from(args, args.days), session if engine else None)
            except ValueError as error:
                raise CliError(str(error)) from None
            if args.store_households and engine is not None:
                added = store_synthetic(session, scenario.households)
                session.commit()
                log.info("%d synthetic households stored as addresses (marked synthetic)", added)
        return scenario

    def prepare(self) -> tuple[Any, list]:
        """The scenario and its timed lifts (as fast as possible: the last day ends now)."""
        args = self.args
        scenario = self.scenario()
        now = datetime.now(UTC)
        lifts = scenario.lifts(now, args.days, options_from(args).driving)
        if not lifts:
            raise CliError("the rounds hold no lift: widen --area or raise --round-km")
        if args.speed <= 0:
            end = max(lift.ended_at for lift in lifts)
            lifts = [_shift(lift, now - end) for lift in lifts]
        return scenario, lifts

    def run(self) -> int:
        import time

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
        summary = truth.summary()
        took = time.perf_counter() - started
        print(f"{summary['lifts']} lifts ({summary['contaminated']} contaminated) by {len(scenario.trucks)} trucks "
              f"on {len(summary['streets'])} streets in {took:.1f} s ({summary['lifts'] / took:.0f} lifts/s, "
              f"planning {started - planned:.1f} s); faults {summary['faults'] or 'none'}; truth: {path}")
        return 0

    def _broker(self) -> Any:
        if not self.args.embedded_broker:
            return None
        from urllib.parse import urlsplit

        from trivue.broker import BrokerError

        parts = urlsplit(self.broker_url)
        try:
            return BrokerHandle(parts.hostname or "127.0.0.1", parts.port or 1883).start()
        except BrokerError as error:
            raise CliError(str(error)) from None

    def play(self, scenario: Any, lifts: list, broker: BrokerHandle | None = None) -> Any:
        """Publish the lifts (events or full mode) with the fault plan; returns the ground truth."""
        from trivue.truth import Truth

        args = self.args
        stream = stream_of(args.stream)
        rates = {street.key: rate for street, rate in scenario.rates.items()}
        settings = {"mode": args.mode, "seed": args.seed, "trucks": scenario.trucks, "stream": stream.value,
                    "days": args.days, "bad_streets": [s.name for s in scenario.bad_streets]}
        truth = Truth(settings, rates)
        faults = fault_plan(args).with_skews(scenario.trucks, random.Random(args.seed))
        restart = broker.restart if broker is not None else None
        if args.mode == "events":
            self._events(scenario, lifts, stream, faults, truth, restart)
        else:
            from trivue.fullmode import FullRun

            FullRun(self, scenario, stream, truth, faults, broker).play(lifts, args.speed)
        return truth

    def _events(self, scenario: Any, lifts: list, stream: Any, faults: Any, truth: Any, restart: Any) -> None:
        from rich.progress import Progress

        from trivue.contents import ContentMaker, EvidencePhotos
        from trivue.fleet import EventsRun
        from trivue.publisher import FleetLink, PublishError
        from vision.rules import SortingRules

        contents = ContentMaker(SortingRules.load(), stream)
        photos = None
        if self.args.evidence_photos is not None:
            try:
                photos = EvidencePhotos(sorted(self.args.evidence_photos.glob("*")))
            except ValueError as error:
                raise CliError(f"--evidence-photos {self.args.evidence_photos}: {error}") from None
        try:
            link = FleetLink(self.broker_url, self.prefix, scenario.trucks, self.args.connections).start()
        except PublishError as error:
            raise CliError(str(error)) from None
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task(f"{len(scenario.trucks)} trucks publishing", total=len(lifts))
                run = EventsRun(link, contents, faults, truth, scenario.rng, restart, photos)
                run.run(lifts, self.args.speed, lambda: progress.advance(task))
                progress.update(task, description="waiting for the broker's acknowledgements")
                if not link.flush(60):
                    raise CliError(f"{link.unacked} message(s) not acknowledged by {self.broker_url} in 60 s")
        finally:
            link.stop()


class _NoSession:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class BrokerHandle:
    """The embedded broker, restartable (a fresh amqtt broker on the same port: sessions are lost)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.broker = host, port, None

    def start(self) -> BrokerHandle:
        from trivue.broker import EmbeddedBroker

        self.broker = EmbeddedBroker(self.host, self.port).start()
        return self

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def _shift(lift: Any, delta: timedelta) -> Any:
    from dataclasses import replace

    return replace(lift, started_at=lift.started_at + delta, ended_at=lift.ended_at + delta)
