"""Lifts placed along streets, their ends included: is the right street still found at a corner?

    .venv/bin/python bench/street_ends.py [--trucks 20] [--streets 12] [--spacing 6] [--sigmas 2.5,3,10]
                                          [--seed 0] [--no-accuracy]

``bench/streets.py`` drives ``trivue simulate``'s rounds, whose households are never within 6 m of a
crossing. A check from outside may place lifts otherwise: every ``--spacing`` metres along each
segment of a street, both ends included, so some lifts sit on a crossing's node (a corner
house's bin). Here each of ``--trucks`` trucks collects ``--streets`` random streets of 30-150 m
of the real Rennes network one after the other (no drive between them), GPS noise of sigma
metres on each axis, no heading. Each truck's lifts are matched as one path
(``TrackLocator.match_track``, what ingest converges to) and one by one (``Locator.locate``, the
ingest before issue 16), and the path again with the crossing clearance unbounded (``CORNER_STOP``
0, the matcher before 2026-12-04), side by side in one run. The same with the lifts kept at least
6 m from every segment end (the simulator's placement) shows what the bound costs where no bin
sits at a corner. It prints the share of lifts on their street and of streets whose count comes
back exact.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from base.paths import SHARED_DIR
from server.db import make_engine
from server.migrate import upgrade_database
from server.streets import trajectory
from server.streets.importer import import_street_file
from server.streets.trajectory import Fix, TrackLocator
from trivue.sim.rounds import Link, StreetNetwork

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
SHORT_M = (30.0, 150.0)  # street lengths drawn: short streets have most of their lifts near an end
SIM_MARGIN_M = 6.0  # trivue simulate keeps households this far from a junction


def stops(link: Link, spacing: float, margin: float) -> list[tuple[float, float]]:
    """(x, y) every ``spacing`` metres along the link, ``margin`` metres clear of its ends (0: the
    end nodes themselves are stops)."""
    length = link.length_m
    if length < 2 * margin:
        return []
    count = int((length - 2 * margin) // spacing)
    places = [margin + k * spacing for k in range(count + 1)]
    if length - margin - places[-1] > 0.5:
        places.append(length - margin)
    return [link.point_at(s)[:2] for s in places]


def trucks_lifts(network: StreetNetwork, trucks: int, streets: int, spacing: float, margin: float, sigma: float,
                 reported: bool, seed: int) -> list[list[tuple[int, Fix]]]:
    """Per truck, its lifts as (true street id, fix) in collection order."""
    rng = random.Random(seed)
    links: dict[int, list[Link]] = {}
    for link in network.links:
        links.setdefault(link.street.street_id, []).append(link)  # type: ignore[arg-type]
    short = [s for s in sorted(links) if SHORT_M[0] <= sum(link.length_m for link in links[s]) <= SHORT_M[1]]
    result = []
    for _ in range(trucks):
        lifts: list[tuple[int, Fix]] = []
        for street in rng.sample(short, streets):
            for link in links[street]:
                for x, y in stops(link, spacing, margin):
                    lon, lat = network.frame.to_lonlat(x + rng.gauss(0, sigma), y + rng.gauss(0, sigma))
                    lifts.append((street, Fix(lat, lon, T0 + timedelta(seconds=20 * len(lifts)), None,
                                              sigma if reported else None)))
        result.append(lifts)
    return result


def path_streets(locator: TrackLocator, paths: list[list[tuple[int, Fix]]]) -> list[list[int | None]]:
    """Each truck's lifts matched as one path: their street ids."""
    return [[m.street_id if m else None for m in locator.match_track([fix for _, fix in path])] for path in paths]


def score(paths: list[list[tuple[int, Fix]]], matched: list[list[int | None]]) -> tuple[int, int, int, int]:
    """(lifts right, lifts, streets exact, streets): a street is exact when its count is."""
    right = lifts = exact = streets = 0
    for path, got in zip(paths, matched, strict=True):
        truth = [street for street, _ in path]
        right += sum(a == b for a, b in zip(got, truth, strict=True))
        lifts += len(truth)
        wanted, counted = Counter(truth), Counter(got)
        exact += sum(counted[street] == n for street, n in wanted.items())
        streets += len(wanted)
    return right, lifts, exact, streets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trucks", type=int, default=20)
    parser.add_argument("--streets", type=int, default=12, help="streets per truck")
    parser.add_argument("--spacing", type=float, default=6.0, help="metres between lifts")
    parser.add_argument("--sigmas", default="2.5,3,10", help="GPS noise levels, metres (1 sigma per axis)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-accuracy", action="store_true", help="fixes without a reported accuracy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ends.db'}")
        upgrade_database(engine)
        with Session(engine) as session:
            import_street_file(session, SHARED_DIR / "geodata" / "rennes-streets.osm.geojson", commune="Rennes")
            session.commit()
        with Session(engine) as session:
            locator = TrackLocator.from_session(session)
            network = StreetNetwork.from_session(session)
        engine.dispose()
    table = Table("GPS noise", "lifts placed", "lifts", "one point: lifts / streets exact",
                  "path, clearance unbounded (before)", "path, bounded (now)", "path matching lifts/s",
                  title=f"bench/street_ends.py: {args.trucks} trucks x {args.streets} random Rennes streets of "
                        f"{SHORT_M[0]:g}-{SHORT_M[1]:g} m, a lift every {args.spacing:g} m, no heading"
                        + ("" if not args.no_accuracy else ", fixes without accuracy"))
    for sigma in (float(v) for v in args.sigmas.split(",")):
        for margin, placed in ((0.0, "ends included"), (SIM_MARGIN_M, f">= {SIM_MARGIN_M:g} m from ends")):
            paths = trucks_lifts(network, args.trucks, args.streets, args.spacing, margin, sigma,
                                 not args.no_accuracy, args.seed)
            alone = [[m.street_id if m else None for m in (locator.locate(f.lat, f.lon, None, f.accuracy_m)
                                                           for _, f in path)] for path in paths]
            with mock.patch.object(trajectory, "CORNER_STOP", 0.0):
                before = path_streets(locator, paths)
            started = time.process_time()
            now = path_streets(locator, paths)
            cpu = time.process_time() - started
            cells = []
            for matched in (alone, before, now):
                right, lifts, exact, streets = score(paths, matched)
                cells.append(f"{right / lifts:.2%} / {exact / streets:.1%} ({exact}/{streets})")
            table.add_row(f"{sigma:g} m", placed, str(lifts), *cells, f"{lifts / cpu:,.0f}")
            print(f"  {sigma:g} m, {placed}: done", flush=True)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
