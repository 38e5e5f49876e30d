"""How fast the map page loads with 3,000 streets and a year of lifts (1 million by default).

Seeds a fresh SQLite database (or ``--database-url``) with real Rennes streets, shifted copies of
them until ``--streets`` streets exist, and street x day x stream aggregates adding up to
``--lifts`` lifts with their day, month and year roll-ups (what ingest would have written; the
map never reads raw lifts, and ``/api/streets`` sums the roll-ups). Then runs the
real server and measures, side by side in one run:

- the API calls the map makes (``/api/network.geojson`` once, ``/api/streets`` per filter) and the
  integrators' ``/api/streets.geojson``, median of ``--repeat`` calls;
- the whole map page in headless Chromium, from navigation start until every street is drawn
  and coloured (``body[data-map-state=ready]``), and a filter change.

    .venv/bin/python bench/dashboard.py [--streets 3000] [--lifts 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from base.paths import SHARED_DIR
from server.app import create_app
from server.config import load_settings
from server.ingest.models import StreetDay, StreetDayError, StreetPeriod
from server.ingest.rollups import rebuild_rollups
from server.streets.importer import import_street_file
from server.streets.models import Street
from server.web.auth import add_user

PASSWORD = "bench-password-123"
CATEGORIES = ("sac_ferme", "biodechet", "textile", "verre", "deee")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
console = Console()


def shifted(geometry: str, dlon: float, dlat: float) -> str:
    shape = json.loads(geometry)
    shape["coordinates"] = [[[x + dlon, y + dlat] for x, y in line] for line in shape["coordinates"]]
    return json.dumps(shape, separators=(",", ":"))


def seed_streets(db: Session, target: int) -> list[int]:
    """Rennes, then copies shifted east and north (other 'communes') until ``target`` streets exist."""
    import_street_file(db, SHARED_DIR / "geodata" / "rennes-streets.osm.geojson", commune="Rennes")
    originals = list(db.scalars(select(Street).order_by(Street.id)))
    copies, ring = [], 1
    while len(originals) + len(copies) < target:
        for street in originals[: target - len(originals) - len(copies)]:
            copies.append({"name": street.name, "commune": f"Rennes-{ring}", "name_key": street.name_key,
                           "geometry": shifted(street.geometry, 0.16 * ring, 0.02 * ring),
                           "length_m": street.length_m})
        ring += 1
    if copies:
        db.execute(insert(Street), copies)
    db.commit()
    return list(db.scalars(select(Street.id)))


def seed_aggregates(db: Session, street_ids: list[int], lifts: int, seed: int = 1) -> int:
    """Street-day rows for two collections a week over a year, adding up to ``lifts`` lifts, and
    their roll-ups: a period is read from ``street_periods``, so days alone would time an empty map."""
    rng = random.Random(seed)
    today = date.today()
    days = [today - timedelta(days=n) for n in range(365) if n % 7 in (1, 4)]  # 104 collection days
    per_row = lifts / (len(street_ids) * len(days))
    total, rows, errors = 0, [], []
    for sid in track(street_ids, description="aggregates", console=console):
        dirt = rng.betavariate(1.2, 8)  # most streets sort well, a few do not
        for day in days:
            n = max(1, round(rng.gauss(per_row, per_row / 4)))
            bad = sum(rng.random() < dirt for _ in range(n))
            total += n
            rows.append({"street_id": sid, "day": day, "stream": "recyclables", "lifts": n, "contaminated": bad,
                         "alerts": 0, "score": float(bad)})
            if bad:
                errors.append({"street_id": sid, "day": day, "stream": "recyclables",
                               "category": rng.choice(CATEGORIES), "severity": "error", "lifts": bad, "items": bad})
        if len(rows) > 50_000:
            _flush(db, rows, errors)
    _flush(db, rows, errors)
    rebuild_rollups(db)
    db.commit()
    return total


def _flush(db: Session, rows: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    if rows:
        db.execute(insert(StreetDay), rows)
    if errors:
        db.execute(insert(StreetDayError), errors)
    rows.clear()
    errors.clear()


def timed_get(client: httpx.Client, path: str, params: dict[str, str], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path, params=params)
        response.raise_for_status()
        times.append(time.perf_counter() - start)
        size = len(response.content)
    return statistics.median(times), size


def browser_timings(url: str, repeat: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    loads, filters = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.goto(f"{url}/login")
        page.fill("#username", "bench")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/carte")
        for _ in range(repeat):
            page.goto(f"{url}/carte?period=90", wait_until="commit")
            page.wait_for_selector("body[data-map-state=ready]", timeout=60_000)
            loads.append(page.evaluate("performance.now()") / 1000)
            start = time.perf_counter()
            page.select_option("#f-period", "30")
            page.wait_for_selector("body[data-map-state=ready]", timeout=60_000)
            filters.append(time.perf_counter() - start)
        browser.close()
    return {"page": statistics.median(loads), "filter": statistics.median(filters)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streets", type=int, default=3000)
    parser.add_argument("--lifts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in the data folder")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the seeded database here and reuse it next time (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trivue-bench-") as folder:
        settings = load_settings(env={}, data_dir=args.data_dir or Path(folder), database_url=args.database_url,
                                 ingest_enabled=False, cookie_secure=False)
        app = create_app(settings)
        with app.state.ctx.sessions() as db:
            if db.scalar(select(func.count()).select_from(Street)) == 0:
                add_user(db, "bench", PASSWORD, "viewer")
                seed_aggregates(db, seed_streets(db, args.streets), args.lifts)
            elif db.scalar(select(func.count()).select_from(StreetPeriod)) == 0:  # a --data-dir seeded before
                rebuild_rollups(db)
                db.commit()
            streets = db.scalar(select(func.count()).select_from(Street)) or 0
            lifts = db.scalar(select(func.sum(StreetDay.lifts))) or 0
        console.print(f"{streets:,} streets and {lifts:,} lifts as street-day aggregates")
        run(app, args.repeat, streets, lifts)


def run(app: Any, repeat: int, streets: int, lifts: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    since = (date.today() - timedelta(days=89)).isoformat()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.post("/api/login", json={"name": "bench", "password": PASSWORD}).raise_for_status()
            if not client.get("/api/streets", params={"since": since}).json()["streets"]:
                raise SystemExit("/api/streets lists no street for the last 90 days: the map would be timed empty")
            calls = {
                "GET /api/network.geojson (map, once)": ("/api/network.geojson", {}),
                "GET /api/streets?since=90 d (map, per filter)": ("/api/streets", {"since": since}),
                "GET /api/streets.geojson?since=90 d (GIS)": ("/api/streets.geojson", {"since": since}),
                "GET /carte (page shell)": ("/carte", {}),
            }
            results = {name: timed_get(client, path, params, repeat) for name, (path, params) in calls.items()}
        page = browser_timings(url, repeat)
    finally:
        server.should_exit = True
        thread.join(10)
    table = Table(title=f"Map with {streets:,} streets, {lifts:,} lifts (median of {repeat})")
    table.add_column("what")
    table.add_column("time", justify="right")
    table.add_column("size", justify="right")
    for name, (seconds, size) in results.items():
        table.add_row(name, f"{seconds * 1000:.0f} ms", f"{size / 1024:.0f} KiB")
    table.add_row("Chromium: /carte until every street is drawn", f"{page['page'] * 1000:.0f} ms", "")
    table.add_row("Chromium: period filter change until recoloured", f"{page['filter'] * 1000:.0f} ms", "")
    console.print(table)


if __name__ == "__main__":
    main()
