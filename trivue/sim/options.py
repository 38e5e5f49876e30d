"""Typed options of ``trivue simulate`` and ``trivue demo``, checked once from the command line.

The command line is parsed by argparse in ``trivue.sim.cli`` and ``trivue.demo.cli``; everything
after that takes these frozen values, so a misspelt option is an error at start, not an
``AttributeError`` in a truck thread an hour later.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from base.credentials import mask_url
from base.errors import CliError
from trivue.sim.faults import DarkCamera, FaultPlan, Window
from trivue.sim.homes import ContaminationPlan
from trivue.sim.scenario import ScenarioOptions
from trivue.sim.schedule import DrivingSettings
from vision.schema import Stream

SHARES = ("bad_share", "bad_rate", "base_rate", "rfid_share", "gps_dropout")
FAULT_SHARES = ("outage_share", "duplicates", "skew_share", "malformed")  # trivue simulate's only


def check_shares(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    for name in names:
        if not 0 <= getattr(args, name) <= 1:
            raise CliError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a share between 0 and 1")


def check_at_least(args: argparse.Namespace, name: str, least: float, meaning: str = "") -> None:
    """``--name`` at least ``least``; ``meaning`` says what the least value means, when it is special."""
    if getattr(args, name) < least:
        raise CliError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected {least:g}{meaning} or more")
Mode = Literal["events", "full"]


def stream_of(text: str) -> Stream:
    try:
        return Stream(text)
    except ValueError:
        raise CliError(f"--stream {text!r} is not one of {[s.value for s in Stream]}") from None


@dataclass(frozen=True, slots=True)
class WorldOptions:
    """The world both commands simulate: trucks, streets, households, contamination, GPS, stream."""

    scenario: ScenarioOptions
    stream: Stream

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorldOptions:
        stream = stream_of(args.stream)
        check_shares(args, SHARES)
        if args.trucks < 1:
            raise CliError(f"--trucks {args.trucks}: at least one truck")
        if not args.round_km > 0:  # a round of no length holds no lift
            raise CliError(f"--round-km {args.round_km}: expected a length above 0")
        check_at_least(args, "gps_sigma", 0, " (exact fixes)")
        if args.area is not None:
            from server.streets.osm import on_the_globe  # numpy: not at `trivue --help`

            lat, lon, radius = args.area
            if not on_the_globe(lon, lat):
                raise CliError(f"--area {lat:g},{lon:g},{radius:g}: latitude is -90..90 and longitude -180..180 "
                               "degrees")
            if not radius > 0:
                raise CliError(f"--area {lat:g},{lon:g},{radius:g}: the radius is metres above 0")
        plan = ContaminationPlan(args.base_rate, args.bad_rate, args.bad_share, dict(args.street_rate))
        driving = DrivingSettings(gps_sigma_m=args.gps_sigma, gps_dropout=args.gps_dropout)
        scenario = ScenarioOptions(args.trucks, args.round_km, 1, args.area, args.rfid_share, args.seed,
                                   contamination=plan, driving=driving)
        return cls(scenario, stream)

    @property
    def seed(self) -> int:
        return self.scenario.seed

    def for_days(self, days: int) -> ScenarioOptions:
        return replace(self.scenario, days=days)


def check_broker(url: str | None) -> None:
    """``--broker`` as the server's ``broker_url`` setting takes it, named as typed, before the scenario is
    built (a settings file's URL is checked by the settings; the password masked as in the logs)."""
    if url is None:
        return
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # out of range or not a number
        port_ok = False
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not port_ok:
        raise CliError(f"--broker {mask_url(url)!r}: expected mqtt://host:port or mqtts://host:port")


def check_model(model: Path | None) -> None:
    """A model asked for by name must be there: only the default one may be missing (a checkout
    without it runs simulated judged events, and says so)."""
    if model is not None and not model.is_file():
        raise CliError(f"--model {model}: no such model file" if not model.exists() else f"--model {model}: not a file")


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """``trivue simulate``'s options (see ``trivue simulate --help`` for each one's meaning)."""

    world: WorldOptions
    faults: FaultPlan
    mode: Mode = "events"
    days: int = 1
    speed: float = 0.0
    config: Path | None = None
    database_url: str | None = None
    streets: Path | None = None
    commune: str | None = None
    broker: str | None = None
    embedded_broker: bool = False
    connections: int = 0
    store_households: bool = False
    images: tuple[Path, Path] | None = None
    evidence_photos: Path | None = None
    model: Path | None = None
    truth: Path | None = None
    verbose: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SimulateOptions:
        """Every option checked before anything is read, started or written."""
        world = WorldOptions.from_args(args)
        check_shares(args, FAULT_SHARES)
        check_at_least(args, "days", 1)  # none gave "the rounds hold no lift", which blamed the area
        check_at_least(args, "speed", 0, " (as fast as possible)")
        check_at_least(args, "connections", 0, " (one per truck)")
        if any(not at >= 0 for at in args.broker_restart):  # simulated seconds into the run
            raise CliError(f"--broker-restart {min(args.broker_restart)}: expected 0 seconds or more")
        faults = FaultPlan(tuple(Window.parse(w) for w in args.outage), args.outage_share,
                           tuple(args.broker_restart), args.duplicates, args.skew_share, args.clock_skew,
                           args.malformed, dark=DarkCamera.parse(args.camera_dark) if args.camera_dark else None)
        check_model(args.model)
        check_broker(args.broker)
        if args.truth is not None and args.truth.exists() and not args.truth.is_dir():
            raise CliError(f"--truth {args.truth}: a file is there; the truth is a folder (lifts.csv, truth.json, "
                           "bins.csv)")
        # Options that would be read by nothing: refused rather than silently ignored
        if args.streets is not None and args.database_url and not args.store_households:
            raise CliError("--database-url is not read with --streets (the streets come from the file); "
                           "add --store-households to write the simulated households to that database")
        if args.mode == "events" and args.images:
            raise CliError("--images is for full mode (its trucks photograph each lift); events mode publishes "
                           "judged events without photos")
        if args.mode == "full" and args.evidence_photos is not None:
            raise CliError("--evidence-photos is for events mode: in full mode the trucks' own photos are the "
                           "evidence")
        if args.mode == "full" and args.connections:
            raise CliError("--connections is for events mode: in full mode each truck agent has its own connection")
        if args.mode == "full" and (faults.outages or faults.duplicates or faults.malformed):
            raise CliError("--outage, --duplicates and --malformed are events-mode faults (they test the server); "
                           "full mode takes --clock-skew, --broker-restart and --camera-dark")
        return cls(world, faults, args.mode, args.days, args.speed, args.config, args.database_url, args.streets,
                   args.commune, args.broker, args.embedded_broker, args.connections, args.store_households,
                   tuple(args.images) if args.images else None, args.evidence_photos, args.model, args.truth,
                   args.verbose)
