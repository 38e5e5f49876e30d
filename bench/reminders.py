"""How long planning a reminder campaign and measuring its effect take on a metropolis-sized database.

Seeds a fresh SQLite database (or ``--database-url``) with ``--streets`` streets of ``--households``
households each and ``--lifts`` lifts over the last 60 days, written by the server's own write path
(``server.ingest.aggregates.insert_lifts``: lifts and street aggregates), a tenth of the households sorting
badly. Then measures, side by side in one run (median of ``--repeat``):

- the floor: fetching the window's contaminated lifts with their errors (a plan cannot do less);
- ``make_plan`` over the same 30-day window (households, streets, thank-yous);
- ``effect.measure`` for a campaign sent to 5 % of the streets 30 days ago (matching + bootstrap).

    .venv/bin/python bench/reminders.py [--streets 3000] [--households 10] [--lifts 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import make_engine
from server.ingest.aggregates import insert_lifts
from server.ingest.models import Lift
from server.migrate import upgrade_database
from server.reminders.config import RemindersConfig
from server.reminders.effect import measure
from server.reminders.models import Campaign, Item, upgrade_reminders
from server.reminders.plan import make_plan

TODAY = date.today()
DIRTY = [{"class": "glass", "count": 1, "category": "verre", "severity": "error"}]


def lift(rng: random.Random, street: int, household: int, dirty: bool, n: int) -> dict[str, Any]:
    day = TODAY - timedelta(days=rng.randrange(60))
    when = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8)
    return {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "truck_id": "benne-01", "sequence": n,
            "stream": "recyclables", "started_at": when, "ended_at": when, "day": day, "received_at": when,
            "lat": 47.9, "lon": 1.9, "accuracy_m": 4.0, "heading_deg": None, "bin_id": None,
            "contaminated": dirty, "has_alert": False, "score": 1.0 if dirty else 0.0, "counts": {},
            "errors": DIRTY if dirty else [], "model_name": "bench", "model_version": "1", "frames": 10,
            "evidence_sha256": None, "street_id": street, "segment_id": street, "street_distance_m": 3.0,
            "address_id": household, "address_distance_m": 2.0, "match_confidence": 0.9, "street_confidence": None}


def seed(session: Session, args: argparse.Namespace) -> None:
    rng = random.Random(1)
    households = args.streets * args.households
    bad = set(rng.sample(range(households), households // 10))
    batch: list[dict[str, Any]] = []
    for n in track(range(args.lifts), description="seeding lifts", transient=True):
        household = rng.randrange(households)
        dirty = rng.random() < (0.35 if household in bad else 0.04)
        batch.append(lift(rng, 1 + household // args.households, household + 1, dirty, n))
        if len(batch) == 5000:
            insert_lifts(session, batch)
            batch = []
    insert_lifts(session, batch)
    session.commit()


def campaign(session: Session, streets: int) -> Campaign:
    started = datetime.combine(TODAY - timedelta(days=30), datetime.min.time(), UTC)
    row = Campaign(name="bench", created_by="bench", since=TODAY - timedelta(days=60), until=TODAY - timedelta(days=31),
                   rules={}, started_at=started)
    session.add(row)
    session.flush()
    for sid in range(1, streets + 1, 20):
        session.add(Item(campaign_id=row.id, kind="street", level=1, target_key=f"street:{sid}", street_id=sid,
                         lifts=0, contaminated=0, categories={}, event_ids=[], reason="", status="sent"))
    session.commit()
    return row


def timed(repeat: int, call: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streets", type=int, default=3000)
    parser.add_argument("--households", type=int, default=10, help="per street")
    parser.add_argument("--lifts", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trivue-bench-reminders-"))
    engine = make_engine(args.database_url or f"sqlite:///{folder / 'bench.db'}")
    upgrade_database(engine)
    upgrade_reminders(engine)
    with Session(engine) as session:
        started = time.perf_counter()
        seed(session, args)
        seeded = time.perf_counter() - started
        since = TODAY - timedelta(days=29)
        floor, rows = timed(args.repeat, lambda: session.execute(select(Lift.event_id, Lift.errors).where(
            Lift.contaminated.is_(True), Lift.day >= since, Lift.day <= TODAY)).all())
        plan_s, plan = timed(args.repeat, lambda: make_plan(session, RemindersConfig(), TODAY))
        target = campaign(session, args.streets)
        effect_s, report = timed(args.repeat, lambda: measure(session, target, RemindersConfig().effect, TODAY))
    table = Table(title=f"{args.lifts:,} lifts, {args.streets:,} streets, {args.streets * args.households:,} "
                        f"households ({engine.dialect.name}; seeded in {seeded:.0f} s)")
    for column in ("step", "median s", "× floor", "result"):
        table.add_column(column)
    table.add_row("floor: contaminated lifts of 30 days", f"{floor:.3f}", "1.0", f"{len(rows):,} rows")
    households = sum(t.kind == "household" for t in plan.targets)
    table.add_row("make_plan (30 days)", f"{plan_s:.3f}", f"{plan_s / floor:.1f}",
                  f"{households:,} households, {len(plan.targets) - households:,} streets/thanks, "
                  f"{len(plan.skipped):,} skipped")
    table.add_row("effect.measure (2000 draws)", f"{effect_s:.3f}", f"{effect_s / floor:.1f}",
                  f"{report['groups']['targeted']['units']} targeted vs {report['groups']['control']['units']} "
                  f"controls: {report['status']}")
    Console().print(table)
    engine.dispose()


if __name__ == "__main__":
    main()
