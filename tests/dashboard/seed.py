"""A small city for the dashboard tests: real Rennes streets, lifts matched by the real ingest code.

Lifts are judged by the real French rules and written with ``server.ingest.aggregates`` (the functions
ingest uses: street matching, idempotent insert, incremental aggregates), so what the dashboard
shows comes from the same tables a live server fills. Each seeded street has a planned profile
(clean, dirty, too few lifts, only old lifts) that the browser tests look for on screen.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.aggregates import insert_lifts, lift_row
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.streets.models import Street
from server.web.auth import add_user
from vision.rules import SortingRules
from vision.schema import GpsFix, LiftEvent, ModelInfo, Stream

PASSWORD = "correct-horse-battery"
USERS = {"gestionnaire": "manager", "lecteur": "viewer", "administratrice": "admin"}
MODEL = ModelInfo(name="trivue-waste", version="2026.11.1", sha256="5e" * 32)  # a wire 1.2 truck names its file
DIRTY_ITEMS = ({"bag": 1}, {"food": 2}, {"textile": 1}, {"glass": 1, "bag": 1})
CLEAN_ITEMS = ({"bottle": 2}, {"can": 1, "carton": 1}, {"film": 3})


@dataclass(frozen=True, slots=True)
class Phase:
    rate: float  # chance that a lift is contaminated
    lifts: int
    oldest_days: int  # lifts fall between this many days ago and ``newest_days``
    newest_days: int = 0


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    phases: tuple[Phase, ...]


PROFILES = (
    Profile("dirty", (Phase(0.45, 80, 60),)), Profile("dirty", (Phase(0.35, 60, 60),)),
    Profile("medium", (Phase(0.15, 70, 60),)), Profile("clean", (Phase(0.02, 90, 60),)),
    Profile("clean", (Phase(0.03, 70, 60),)), Profile("few", (Phase(0.5, 2, 20),)),
    Profile("old", (Phase(0.4, 40, 80, 45),)),
    # Bad a month ago, good since: the ranking's "most improved" over the last 30 days.
    Profile("improving", (Phase(0.6, 40, 59, 31), Phase(0.04, 50, 29))),
)


@dataclass(slots=True)
class SeededCity:
    streets: dict[str, list[int]] = field(default_factory=dict)  # profile -> street ids
    lifts: int = 0
    # street id -> its contaminated lifts as (event id, truck id), oldest first
    contaminated: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    point_of: dict[int, tuple[float, float]] = field(default_factory=dict)  # street id -> (lat, lon)


def street_midpoint(street: Street) -> tuple[float, float]:
    """(lat, lon) of the middle vertex of the street's longest piece: well inside one street."""
    lines = json.loads(street.geometry)["coordinates"]
    longest = max(lines, key=len)
    lon, lat = longest[len(longest) // 2]
    return lat, lon


def _pick_streets(session: Session, count: int, rng: random.Random) -> list[Street]:
    # Long streets, far from each other's middle: the matcher must not hesitate between two.
    candidates = sorted(session.scalars(select(Street).where(Street.length_m > 400)), key=lambda s: s.id)
    rng.shuffle(candidates)
    return candidates[:count]


def make_event(truck: str, sequence: int, when: datetime, point: tuple[float, float], items: dict[str, int],
               rules: SortingRules) -> LiftEvent:
    verdict = rules.judge(Stream.recyclables, items)
    return LiftEvent(
        truck_id=truck, sequence=sequence, stream=Stream.recyclables, started_at=when,
        ended_at=when + timedelta(seconds=9), gps=GpsFix(lat=point[0], lon=point[1], accuracy_m=4.0),
        counts=items, errors=list(verdict.errors), contaminated=verdict.contaminated, score=verdict.score,
        model=MODEL, frames=60)


def _events(profile: Profile, point: tuple[float, float], rng: random.Random, now: datetime,
            rules: SortingRules, sequence: int) -> list[LiftEvent]:
    events = []
    for phase in profile.phases:
        for _ in range(phase.lifts):
            sequence += 1
            events.append(_event(phase, point, rng, now, rules, sequence))
    return events


def _event(phase: Phase, point: tuple[float, float], rng: random.Random, now: datetime, rules: SortingRules,
           sequence: int) -> LiftEvent:
    days = rng.uniform(phase.newest_days, phase.oldest_days)
    when = (now - timedelta(days=days)).replace(hour=rng.randint(6, 12))
    if when > now:  # a morning hour later than now, today: yesterday's round instead
        when -= timedelta(days=1)
    items = dict(rng.choice(DIRTY_ITEMS if rng.random() < phase.rate else CLEAN_ITEMS))
    return make_event(f"benne-{rng.randint(1, 3):02d}", sequence, when, point, items, rules)


def seed_city(session: Session, geojson: Path, zone: Any, seed: int = 7) -> SeededCity:
    """Import Rennes streets, create the users and store lifts for one street per profile; commits."""
    import_street_file(session, geojson, commune="Rennes")
    for name, role in USERS.items():
        add_user(session, name, PASSWORD, role)
    session.commit()
    rng = random.Random(seed)
    locator = Locator.from_session(session)
    rules = SortingRules.load()
    now = datetime.now(UTC)
    city = SeededCity()
    rows: list[dict[str, Any]] = []
    for profile, street in zip(PROFILES, _pick_streets(session, len(PROFILES), rng), strict=False):
        point = street_midpoint(street)
        events = _events(profile, point, rng, now, rules, sequence=len(rows))
        rows.extend(lift_row(event, now, zone, locator) for event in events)
        city.streets.setdefault(profile.name, []).append(street.id)
        city.point_of[street.id] = point
        city.contaminated[street.id] = [(str(e.event_id), e.truck_id) for e in
                                        sorted(events, key=lambda e: e.started_at) if e.contaminated]
    city.lifts = len(insert_lifts(session, rows))
    session.commit()
    return city
