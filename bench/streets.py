"""Street import and matching on the real Rennes network: speed, and the right street from the truck's path.

    .venv/bin/python bench/streets.py [--points 20000] [--addresses 300000] [--batch 500] [--database-url URL]
                                      [--parts speed,accuracy] [--trucks 20] [--round-km 3] [--sigmas 3,10,20]
                                      [--no-accuracy]

Measures, in one run on one database (a fresh SQLite file unless ``--database-url``):

- import of ``rennes-streets.osm.geojson`` (553 km) and ``monaco.osm.pbf``, and a re-import;
- building the ``Locator`` (streets and addresses) from the database;
- ``locate()`` on random fixes over Rennes: the grid index, with and without heading, side by side
  with a brute-force numpy scan of every piece (the ratio is what the index buys), and
  ``locate_many()`` on the same fixes in ingest-sized batches (what batching buys);
- import of a synthetic Base Adresse Nationale file (``--addresses`` rows, gzip, official header)
  laid along the Rennes streets, including linking every address to its street;
- (``accuracy``) a simulated fleet (``trivue simulate``'s scenario and ground truth: ``--trucks``
  trucks collecting ``--round-km`` of real Rennes streets each, households generated along them)
  at GPS noise ``--sigmas`` metres, with and without heading, every lift stored through the
  server's real ``Inbox.write`` in batches of ``ingest_batch_size`` (1,000) in time order:
  one-point matching (each lift alone, the ingest before issue 16) against trajectory matching
  (``server.ingest.tracks``, what the server does), in those batches (a backlog) and one lift per
  batch (trucks publishing live),
  plus the trajectory matched over each truck's whole day at once, and with the bin registry
  (``trivue bins import`` of the simulated collectivity's inventory: the lifts whose RFID tag was
  read, 60 % of bins tagged and 95 % of tags read, take their address's street). It prints
  the share of lifts on their true street, the share of streets whose lift count in the street
  aggregates equals the truth, the lifts flagged ambiguous and the matching throughput, with CPU
  time (the machine may be shared).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from unittest import mock

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import SHARED_DIR
from server.config import ServerSettings, load_settings
from server.db import Base, make_engine
from server.ingest.aggregates import StreetLocator
from server.ingest.bins import BinLookup
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift, StreetDay, StreetDayError
from server.migrate import upgrade_database
from server.streets import gps_noise
from server.streets.addresses import import_address_file
from server.streets.bins import bin_places, import_bins
from server.streets.importer import StreetImport, import_street_file
from server.streets.locator import Locator
from server.streets.models import Segment, Street
from server.streets.trajectory import AMBIGUOUS, Fix, TrackLocator
from trivue.sim.contents import ContentMaker
from trivue.sim.fleet import lift_event as fleet_event
from trivue.sim.homes import store_synthetic, write_bin_registry
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import ScenarioOptions, build_scenario
from trivue.sim.schedule import DrivingSettings, PlannedLift
from vision.rules import SortingRules
from vision.schema import Stream

GEODATA = SHARED_DIR / "geodata"
T = TypeVar("T")  # what a timed step returns
BAN_HEADER = ("id;id_fantoir;numero;rep;nom_voie;code_postal;code_insee;nom_commune;code_insee_ancienne_commune;"
              "nom_ancienne_commune;x;y;lon;lat;type_position;alias;nom_ld;libelle_acheminement;nom_afnor;"
              "source_position;source_nom_voie;certification_commune;cad_parcelles")


def timed(label: str, results: list[tuple[str, str]], func: Callable[..., T], *args: object) -> T:
    started = time.perf_counter()
    value = func(*args)
    results.append((label, f"{time.perf_counter() - started:.2f} s"))
    return value


def import_file(engine: Engine, path: Path, commune: str | None) -> StreetImport:
    with Session(engine) as session:
        report = import_street_file(session, path, commune)
        session.commit()
    return report


def synthetic_ban(engine: Engine, rows: int, folder: Path) -> Path:
    """A BAN-format file with ``rows`` addresses spread along the real Rennes streets."""
    import json

    with Session(engine) as session:
        segments = session.execute(select(Street.name, Segment.geometry).join(Segment)
                                   .where(Street.commune == "Rennes")).all()
    rng = random.Random(3)
    path = folder / "adresses-35-synthetic.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(BAN_HEADER + "\n")
        for n in range(rows):
            name, geometry = segments[n % len(segments)]
            coords = json.loads(geometry)["coordinates"]
            (x0, y0), (x1, y1) = coords[0], coords[-1]
            t = rng.random()
            lon = x0 + (x1 - x0) * t + rng.uniform(-1e-4, 1e-4)
            lat = y0 + (y1 - y0) * t + rng.uniform(-1e-4, 1e-4)
            out.write(f"35238_{n // 500:04d}_{n:06d};35238_{n // 500:04d};{n % 500 + 1};;{name};35000;35238;"
                      f"Rennes;;;0;0;{lon:.6f};{lat:.6f};entrée;;;RENNES;;commune;commune;1;\n")
    return path


def brute_force(locator: Locator, lats: np.ndarray, lons: np.ndarray) -> float:
    """Points per second of a numpy scan over every piece (no index), nearest street only."""
    ax, ay, bx, by = locator._ax, locator._ay, locator._bx, locator._by
    started = time.perf_counter()
    for lat, lon in zip(lats.tolist(), lons.tolist(), strict=True):
        kx, ky = math.cos(math.radians(lat)) * 111_195.0, 111_195.0
        px, py = (ax - lon) * kx, (ay - lat) * ky
        dx, dy = (bx - lon) * kx - px, (by - lat) * ky - py
        t = np.clip(-(px * dx + py * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
        int(np.argmin(np.hypot(px + t * dx, py + t * dy)))
    return len(lats) / (time.perf_counter() - started)


def locate_rate(locator: Locator, lats: np.ndarray, lons: np.ndarray, headings: np.ndarray | None) -> tuple[float, int]:
    started = time.perf_counter()
    found = 0
    for i, (lat, lon) in enumerate(zip(lats.tolist(), lons.tolist(), strict=True)):
        found += locator.locate(lat, lon, None if headings is None else float(headings[i])) is not None
    return len(lats) / (time.perf_counter() - started), found


def locate_many_rate(locator: Locator, lats: np.ndarray, lons: np.ndarray, headings: np.ndarray | None,
                     batch: int) -> tuple[float, int]:
    """Points per second of ``locate_many`` in batches of ``batch`` fixes (ingest: one per batch)."""
    lat_list, lon_list = lats.tolist(), lons.tolist()
    heading_list = headings.tolist() if headings is not None else None
    started = time.perf_counter()
    found = 0
    for i in range(0, len(lat_list), batch):
        matches = locator.locate_many(lat_list[i:i + batch], lon_list[i:i + batch],
                                      heading_list[i:i + batch] if heading_list is not None else None)
        found += sum(m is not None for m in matches)
    return len(lats) / (time.perf_counter() - started), found


# --- accuracy: the right street from the truck's path (issue 16) -------------------------------------


@dataclass
class Outcome:
    lifts: int = 0
    right: int = 0
    streets: int = 0
    exact: int = 0
    flagged: int = 0
    wrong_flagged: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    posterior: bool = True  # one-point matching has no street confidence from a path to flag with
    wrong_at: Counter = field(default_factory=Counter)  # where the wrong lifts are on their truck's round

    def row(self) -> list[str]:
        wrong = self.lifts - self.right
        flags = [f"{self.flagged / self.lifts:.1%}", f"{self.wrong_flagged}/{wrong}"] if self.posterior else ["-", "-"]
        return [f"{self.right / self.lifts:.2%}", f"{self.exact / self.streets:.1%} ({self.exact}/{self.streets})",
                *flags,
                f"{self.lifts / self.wall_s:,.0f} ({self.lifts / self.cpu_s:,.0f})"]


def simulated_lifts(engine: Engine, trucks: int, round_km: float, sigma: float, seed: int) -> list[PlannedLift]:
    """A day of ``trivue simulate``'s rounds over every imported Rennes street, GPS noise ``sigma``."""
    with Session(engine) as session:
        network = StreetNetwork.from_session(session)
    scenario = build_scenario(network, ScenarioOptions(trucks=trucks, round_km=round_km, seed=seed))
    driving = DrivingSettings(gps_sigma_m=sigma, gps_dropout=0.0)  # lifts without a fix match nothing either way
    return sorted(scenario.lifts(datetime(2026, 3, 2, 6, tzinfo=UTC), 1, driving), key=lambda lift: lift.started_at)


def fleet_payload(lift: PlannedLift, contents: ContentMaker, rng: random.Random) -> bytes:
    """The lift as its truck publishes it, with contents drawn for its contamination."""
    drawn = contents.draw(lift.contaminated, rng)
    return fleet_event(lift, Stream.recyclables, drawn.counts, drawn.verdict, 0.0).to_json().encode()


def store_fleet(engine: Engine, settings: ServerSettings, lifts: list[PlannedLift], heading: bool,
                locator: StreetLocator, bins: BinLookup | None = None) -> Outcome:
    """Store the lifts through ``Inbox.write`` in time-ordered batches; compare with the truth.
    ``bins``: the bin registry's lookup (``bin_places``), None to ignore the lifts' tags."""
    with Session(engine) as session, session.begin():
        for table in (Lift, StreetDay, StreetDayError):
            session.execute(delete(table))
    contents = ContentMaker(SortingRules.load(), Stream.recyclables)
    rng = random.Random(1)
    messages = []
    for lift in lifts:
        gps = dict(lift.gps) if heading else {**lift.gps, "heading_deg": None}
        messages.append(MqttMessage(f"{settings.topic_prefix}/{lift.truck_id}/lift",
                                    fleet_payload(replace(lift, gps=gps), contents, rng),
                                    lift.ended_at + timedelta(seconds=2)))
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bins)
    sessions = sessionmaker(engine)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(messages), settings.ingest_batch_size):
        with sessions() as session, session.begin():
            inbox.write(session, messages[start:start + settings.ingest_batch_size])
    outcome = Outcome(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)
    with Session(engine) as session:
        stored = {event_id: (street, confidence) for event_id, street, confidence in
                  session.execute(select(Lift.event_id, Lift.street_id, Lift.street_confidence))}
        counted = dict(session.execute(select(StreetDay.street_id, func.sum(StreetDay.lifts))
                                       .group_by(StreetDay.street_id)).all())
    truth = Counter(lift.household.street.street_id for lift in lifts)
    change = street_changes(lifts)
    for message, lift in zip(messages, lifts, strict=True):
        street, confidence = stored[json.loads(message.payload)["event_id"]]
        right = street == lift.household.street.street_id
        if not right:
            outcome.wrong_at[change[id(lift)]] += 1
        flagged = confidence is not None and confidence < AMBIGUOUS
        outcome.lifts += 1
        outcome.right += right
        outcome.flagged += flagged
        outcome.wrong_flagged += flagged and not right
    outcome.streets = len(truth)
    outcome.exact = sum(int(counted.get(street, 0)) == n for street, n in truth.items())
    return outcome


def street_changes(lifts: list) -> dict[int, str]:
    """Per lift, how far it is (in lifts of its truck) from a change of street on the round."""
    by_truck: dict[str, list] = {}
    for lift in lifts:
        by_truck.setdefault(lift.truck_id, []).append(lift)
    where = {}
    for truck_lifts in by_truck.values():
        streets = [lift.household.street.street_id for lift in truck_lifts]
        changes = [k for k in range(1, len(streets)) if streets[k] != streets[k - 1]]
        for k, lift in enumerate(truck_lifts):
            # A change between k-1 and k: lift k-1 is the last of a street, lift k the first of the next.
            gap = min((k - c if k >= c else c - 1 - k for c in changes), default=99)
            where[id(lift)] = ("first or last lift of a street on the round" if gap == 0 else
                               "2nd or 3rd lift from a change of street" if gap <= 2 else "elsewhere")
    return where


def whole_day(locator: TrackLocator, lifts: list, heading: bool) -> Outcome:
    """Each truck's day matched at once (no provisional window): the trajectory's own ceiling."""
    by_truck: dict[str, list] = {}
    for lift in lifts:
        by_truck.setdefault(lift.truck_id, []).append(lift)
    wall, cpu = time.perf_counter(), time.process_time()
    found = {}
    for truck_lifts in by_truck.values():
        fixes = [Fix(lift.gps["lat"], lift.gps["lon"], lift.started_at,
                     lift.gps["heading_deg"] if heading else None, lift.gps["accuracy_m"]) for lift in truck_lifts]
        for lift, match in zip(truck_lifts, locator.match_track(fixes), strict=True):
            found[id(lift)] = match
    outcome = Outcome(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)
    truth, got = Counter(), Counter()
    for lift in lifts:
        match = found[id(lift)]
        street = match.street_id if match else None
        truth[lift.household.street.street_id] += 1
        got[street] += 1
        outcome.lifts += 1
        outcome.right += street == lift.household.street.street_id
        flagged = match is not None and match.ambiguous
        outcome.flagged += flagged
        outcome.wrong_flagged += flagged and street != lift.household.street.street_id
    outcome.streets = len(truth)
    outcome.exact = sum(got[street] == n for street, n in truth.items())
    return outcome


def registry(engine: Engine, folder: Path, lifts: list[PlannedLift]) -> BinLookup:
    """The collectivity's bin registry for these lifts' households, imported as `trivue bins import`
    does (the generated households stored as addresses first, as `trivue simulate
    --store-households`); returns the lookup ingest is given."""
    households = list({id(lift.household): lift.household for lift in lifts}.values())
    path = folder / "bins.csv"
    write_bin_registry(path, households)
    with Session(engine) as session, session.begin():
        store_synthetic(session, households)
        session.flush()
        import_bins(session, path, replace=True)
    return bin_places


def tags(lifts: list) -> float:
    return sum(bool(lift.bin_id) for lift in lifts) / len(lifts)


def accuracy_tables(folder: Path, trucks: int, round_km: float, sigmas: list[float], seed: int,
                    reported: bool = True) -> None:
    """``reported=False``: the fixes carry no accuracy (receivers that give none, NMEA GGA), so the
    server measures each truck's GPS error from its fixes (``server.streets.gps_noise``)."""
    engine = make_engine(f"sqlite:///{folder / 'fleet.db'}")
    upgrade_database(engine)
    import_file(engine, GEODATA / "rennes-streets.osm.geojson", "Rennes")
    settings = load_settings(env={}, data_dir=folder / "data", database_url=str(engine.url))
    with Session(engine) as session:
        one_point = Locator.from_session(session)
        tracks = TrackLocator.from_session(session)
    table = Table("GPS noise", "heading", "matching", "lifts on their street", "streets exact", "flagged ambiguous",
                  "wrong lifts flagged", "lifts/s stored (CPU)",
                  title=f"bench/streets.py: {trucks} trucks x {round_km:g} km of Rennes rounds, stored by Inbox.write "
                        f"in batches of {settings.ingest_batch_size} (lifts/s: wall clock, in brackets per CPU second)"
                        + ("" if reported else "; fixes without accuracy, the GPS error measured by the server"))
    wrong_places: dict[tuple[float, bool], Counter] = {}
    for sigma in sigmas:
        lifts = simulated_lifts(engine, trucks, round_km, sigma, seed)
        if not reported:
            lifts = [replace(lift, gps={**lift.gps, "accuracy_m": None}) for lift in lifts]
        bins = registry(engine, folder, lifts)  # the same households with and without heading
        for heading in (True, False):
            alone = replace(store_fleet(engine, settings, lifts, heading, one_point), posterior=False)
            path = store_fleet(engine, settings, lifts, heading, tracks)
            live = store_fleet(engine, settings.model_copy(update={"ingest_batch_size": 1}), lifts, heading, tracks)
            tagged = store_fleet(engine, settings, lifts, heading, tracks, bins)
            wrong_places[(sigma, heading)] = path.wrong_at
            rows = [("one point", alone), ("trajectory (ingest)", path), ("trajectory (ingest, lift by lift)", live),
                    ("trajectory, whole day", whole_day(tracks, lifts, heading)),
                    (f"trajectory (ingest) + bin registry ({tags(lifts):.0%} of lifts tagged)", tagged)]
            if not reported:  # side by side: the server before it measured the error, every fix taken for 10 m
                with mock.patch.object(gps_noise, "accuracy_from_offsets", lambda _offsets: None):
                    rows[2:2] = [("trajectory (ingest), 10 m assumed (before)",
                                  store_fleet(engine, settings, lifts, heading, tracks))]
                    rows[4:4] = [("trajectory (ingest, lift by lift), 10 m assumed (before)",
                                  store_fleet(engine, settings.model_copy(update={"ingest_batch_size": 1}), lifts,
                                              heading, tracks)),
                                 ("trajectory, whole day, 10 m assumed (before)", whole_day(tracks, lifts, heading))]
            for name, outcome in rows:
                table.add_row(f"{sigma:g} m", "yes" if heading else "no", name, *outcome.row())
            print(f"  {sigma:g} m, heading {heading}: {len(lifts)} lifts done", flush=True)
    Console(width=200).print(table)
    places = Table("GPS noise", "heading", "wrong lifts", "first or last lift of a street on the round",
                   "2nd or 3rd lift from a change of street", "elsewhere",
                   title="where the wrong lifts of trajectory matching (ingest) are")
    for (sigma, heading), wrong in wrong_places.items():
        places.add_row(f"{sigma:g} m", "yes" if heading else "no", str(sum(wrong.values())),
                       *(str(wrong[k]) for k in ("first or last lift of a street on the round",
                                                 "2nd or 3rd lift from a change of street", "elsewhere")))
    Console(width=200).print(places)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--addresses", type=int, default=300_000)
    parser.add_argument("--database-url")
    parser.add_argument("--batch", type=int, default=500, help="fixes per locate_many call")
    parser.add_argument("--parts", default="speed,accuracy", help="speed, accuracy or both (comma-separated)")
    parser.add_argument("--trucks", type=int, default=20, help="accuracy: simulated trucks")
    parser.add_argument("--round-km", type=float, default=3.0, help="accuracy: street length collected per truck")
    parser.add_argument("--sigmas", default="3,10,20", help="accuracy: GPS noise levels, metres (1 sigma)")
    parser.add_argument("--seed", type=int, default=7, help="accuracy: simulation seed")
    parser.add_argument("--no-accuracy", action="store_true",
                        help="accuracy: fixes without a reported accuracy (the server measures it)")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    results: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        Base.metadata.create_all(engine)
        rennes = GEODATA / "rennes-streets.osm.geojson"
        report = timed("import Rennes GeoJSON (first)", results, import_file, engine, rennes, "Rennes")
        results.append(("  Rennes", f"{report.ways} ways, {report.segments} segments, {report.length_km:.0f} km"))
        if "accuracy" in parts:
            accuracy_tables(Path(tmp), args.trucks, args.round_km, [float(v) for v in args.sigmas.split(",")],
                            args.seed, reported=not args.no_accuracy)
        if "speed" not in parts:
            return
        timed("import Rennes GeoJSON (again, replace)", results, import_file, engine, rennes, "Rennes")
        timed("import monaco.osm.pbf (admin boundaries)", results, import_file, engine,
              GEODATA / "monaco.osm.pbf", None)
        if args.addresses:
            ban = synthetic_ban(engine, args.addresses, Path(tmp))
            with Session(engine) as session:
                started = time.perf_counter()
                addresses = import_address_file(session, ban)
                session.commit()
                elapsed = time.perf_counter() - started
            results.append((f"import {addresses.imported:,} BAN addresses (gz) + linking",
                            f"{elapsed:.1f} s, {addresses.imported / elapsed:,.0f} rows/s"))
        locator = timed("Locator.from_engine (streets + addresses)", results, Locator.from_engine, engine)
        rng = np.random.default_rng(1)
        lats, lons = 48.085 + rng.random(args.points) * 0.045, -1.72 + rng.random(args.points) * 0.08
        rate, found = locate_rate(locator, lats, lons, None)
        results.append(("locate(), grid index", f"{rate:,.0f} points/s ({found / len(lats):.0%} matched)"))
        headings = rng.random(args.points) * 360
        rate_h, _ = locate_rate(locator, lats, lons, headings)
        results.append(("locate() with heading", f"{rate_h:,.0f} points/s"))
        for batch in (args.batch, 50):
            many, found_many = locate_many_rate(locator, lats, lons, None, batch)
            many_h, _ = locate_many_rate(locator, lats, lons, headings, batch)
            same = "same matches" if found_many == found else f"MATCHED {found_many} != {found}"
            results.append((f"locate_many(), batches of {batch}",
                            f"{many:,.0f} points/s, x{many / rate:.1f} vs locate() ({same})"))
            results.append((f"locate_many() with heading, batches of {batch}",
                            f"{many_h:,.0f} points/s, x{many_h / rate_h:.1f}"))
        sample = max(500, args.points // 20)
        brute = brute_force(locator, lats[:sample], lons[:sample])
        results.append(("brute-force numpy scan, nearest only", f"{brute:,.0f} points/s"))
        results.append(("index speed-up", f"x{rate / brute:.0f}"))
    table = Table("step", "result", title=f"bench/streets.py ({engine.url.get_backend_name()})")
    for row in results:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
