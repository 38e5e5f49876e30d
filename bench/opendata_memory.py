"""The memory of one open-data request (``GET /api/opendata/streets.{csv,geojson}``): every month of
``bench/opendata.py``'s generated city, read, sorted and sent in pieces, as the route does.

    .venv/bin/python bench/opendata_memory.py [--streets 3000] [--years 3] [--period month]
                                              [--database URL] [--cache-dir DIR]

Each measure runs in a fresh process, so that one request's peak is not hidden by an earlier one:
once under ``tracemalloc`` (the peak of Python allocations during the request, the session and
imports excluded), once without it (the process's peak RSS during the request, ``VmHWM`` reset just before it, beside
its RSS before the request, and the time from the query to the last piece). Each prints the body's size and
SHA-256, the same both runs; compare them between two versions of the export to see they publish
the same bytes. The database is the bench's cached SQLite one (built the first time, minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.opendata import CACHE_DIR, FIRST_YEAR, prepare
from server.db import make_engine
from server.opendata.export import OpenDataQuery, csv_pieces, geojson_pieces, publication

FORMATS = ("csv", "geojson")


def _status_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak) of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the process's peak


def _reset_peak_rss() -> None:
    # The peak so far is the imports' and the connection's: from here VmHWM is the request's own.
    Path("/proc/self/clear_refs").write_text("5")


def request(url: str, kind: str, period: str, years: int, traced: bool) -> dict[str, object]:
    """One request's figures, in this process."""
    engine = make_engine(url)
    query = OpenDataQuery(period, until=date(FIRST_YEAR + years - 1, 12, 31))
    with Session(engine) as session:
        session.execute(text("SELECT 1"))  # connected before measuring: the request's own share only
        _reset_peak_rss()
        before = _status_mib("VmRSS")
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        pub = publication(session, query)
        pieces = csv_pieces(pub) if kind == "csv" else geojson_pieces(pub)
        digest, size = hashlib.sha256(), 0
        for piece in pieces:
            data = piece.encode()
            digest.update(data)
            size += len(data)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
        tracemalloc.stop()
    engine.dispose()
    rows = pub.count
    return {"kind": kind, "rows": rows, "bytes": size, "sha256": digest.hexdigest(), "seconds": seconds,
            "traced_peak_mib": peak, "rss_before_mib": before, "rss_peak_mib": _status_mib("VmHWM")}


def _child(url: str, kind: str, period: str, years: int, traced: bool) -> dict[str, object]:
    command = [sys.executable, __file__, "--database", url, "--period", period, "--years", str(years),
               "--child", kind] + (["--traced"] if traced else [])
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streets", type=int, default=3000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--period", choices=("month", "year"), default="month")
    parser.add_argument("--database", help="a database already filled by bench/opendata.py (default: its cache)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--child", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(request(args.database, args.child, args.period, args.years, args.traced)))
        return 0
    url = args.database
    if url is None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{args.cache_dir / f'opendata-{args.streets}x{args.years}.db'}"
        engine = make_engine(url)
        prepare(engine, args.streets, args.years, rebuild=False)
        engine.dispose()
    print(f"bench/opendata_memory.py: one request, every {args.period} of {args.years} years, {url}")
    print(f"{'file':<8} {'rows':>8} {'MB':>7} {'traced peak MiB':>16} {'RSS before':>11} {'RSS peak':>9} "
          f"{'s':>6}  sha256")
    for kind in FORMATS:
        traced, plain = _child(url, kind, args.period, args.years, True), _child(url, kind, args.period,
                                                                                  args.years, False)
        if traced["sha256"] != plain["sha256"]:
            raise SystemExit(f"{kind}: two requests gave different bodies")
        print(f"{kind:<8} {plain['rows']:>8,} {plain['bytes'] / 1e6:>7.1f} {traced['traced_peak_mib']:>16.0f} "
              f"{plain['rss_before_mib']:>11.0f} {plain['rss_peak_mib']:>9.0f} {plain['seconds']:>6.1f}  "
              f"{str(plain['sha256'])[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
