"""Street import and matching speed on the real Rennes network, and a département-sized address file.

    .venv/bin/python bench/streets.py [--points 20000] [--addresses 300000] [--batch 500] [--database-url URL]

Measures, in one run on one database (a fresh SQLite file unless ``--database-url``):

- import of ``rennes-streets.osm.geojson`` (553 km) and ``monaco.osm.pbf``, and a re-import;
- building the ``Locator`` (streets and addresses) from the database;
- ``locate()`` on random fixes over Rennes: the grid index, with and without heading, side by side
  with a brute-force numpy scan of every piece (the ratio is what the index buys), and
  ``locate_many()`` on the same fixes in ingest-sized batches (what batching buys);
- import of a synthetic Base Adresse Nationale file (``--addresses`` rows, gzip, official header)
  laid along the Rennes streets, including linking every address to its street.
"""

from __future__ import annotations

import argparse
import gzip
import math
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from base.paths import SHARED_DIR
from server.db import Base, make_engine
from server.streets.addresses import import_address_file
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.streets.models import Segment, Street

GEODATA = SHARED_DIR / "geodata"
BAN_HEADER = ("id;id_fantoir;numero;rep;nom_voie;code_postal;code_insee;nom_commune;code_insee_ancienne_commune;"
              "nom_ancienne_commune;x;y;lon;lat;type_position;alias;nom_ld;libelle_acheminement;nom_afnor;"
              "source_position;source_nom_voie;certification_commune;cad_parcelles")


def timed(label: str, results: list[tuple[str, str]], func, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = func(*args)
    results.append((label, f"{time.perf_counter() - started:.2f} s"))
    return value


def import_file(engine, path: Path, commune: str | None):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        report = import_street_file(session, path, commune)
        session.commit()
    return report


def synthetic_ban(engine, rows: int, folder: Path) -> Path:  # type: ignore[no-untyped-def]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--addresses", type=int, default=300_000)
    parser.add_argument("--database-url")
    parser.add_argument("--batch", type=int, default=500, help="fixes per locate_many call (ingest_batch_size)")
    args = parser.parse_args()
    results: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        Base.metadata.create_all(engine)
        rennes = GEODATA / "rennes-streets.osm.geojson"
        report = timed("import Rennes GeoJSON (first)", results, import_file, engine, rennes, "Rennes")
        results.append(("  Rennes", f"{report.ways} ways, {report.segments} segments, {report.length_km:.0f} km"))
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
