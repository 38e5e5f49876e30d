"""Reminders' lists and counts come in one order on every run and both databases.

The effect report lists (and resamples) a campaign's households: read without ORDER BY, its items
came in the table's physical order, which an update changes on PostgreSQL and
``reverse_unordered_selects`` reverses on SQLite, so the households' rows and their bootstrap
interval (``rng.choice`` over that list) moved with it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from server.ingest.aggregates import insert_lifts, lift_row
from server.reminders.campaigns import campaign_summaries
from server.reminders.config import EffectRules
from server.reminders.effect import measure
from server.reminders.models import HOUSEHOLD, Item
from tests.server.reminders_city import MODEL, RULES, engine_for
from tests.server.test_reminders_effect import CUT, ZONE, StreetByLatitude, campaign_on
from vision.schema import GpsFix, LiftEvent, Stream

TAGS = [f"tag-{n}" for n in range(6)]


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path,
             postgres_available: bool) -> Iterator[sessionmaker[Session]]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield sessionmaker(engine, expire_on_commit=False)


def _bin_lifts(session: Session, rng: random.Random) -> None:
    rows = []
    for n, tag in enumerate(TAGS):
        for k in range(40):
            when = datetime.combine(CUT, datetime.min.time(), UTC) + timedelta(days=(k % 28) - 28 if k < 20 else k % 20,
                                                                               hours=9)
            items = {"glass": 1} if rng.random() < 0.1 + 0.1 * n else {"bottle": 1}
            verdict = RULES.judge(Stream.recyclables, items)
            event = LiftEvent(event_id=uuid.uuid4(), truck_id="t1", sequence=n * 100 + k, stream=Stream.recyclables,
                              started_at=when, ended_at=when + timedelta(seconds=5), bin_id=tag,
                              gps=GpsFix(lat=48.001, lon=1.9), counts=items, errors=list(verdict.errors),
                              contaminated=verdict.contaminated, score=verdict.score, model=MODEL, frames=10)
            rows.append(lift_row(event, when, ZONE, StreetByLatitude()))
    insert_lifts(session, rows)


def _report(session: Session, campaign: Any, reversed_scan: bool) -> dict[str, Any]:
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"PRAGMA reverse_unordered_selects = {int(reversed_scan)}"))
    elif reversed_scan:  # an update of an indexed column writes a new row version, and index entry, last
        first = min(session.scalars(select_households(campaign.id)))
        for status in ("sending", "sent"):
            session.execute(update(Item).where(Item.id == first).values(status=status))
        session.commit()
    try:
        return measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=40))
    finally:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("PRAGMA reverse_unordered_selects = 0"))


def select_households(campaign_id: int) -> Any:
    return select(Item.id).where(Item.campaign_id == campaign_id, Item.kind == HOUSEHOLD)


def test_households_are_listed_and_resampled_in_item_order(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _bin_lifts(session, random.Random(5))
        campaign = campaign_on(session, [1])
        sent = campaign.started_at
        for tag in TAGS:
            session.add(Item(campaign_id=campaign.id, kind=HOUSEHOLD, level=1, target_key=f"bin:{tag}", bin_id=tag,
                             street_id=1, lifts=0, contaminated=0, categories={}, event_ids=[], reason="",
                             status="sent", sent_at=sent))
        session.commit()
        plain = _report(session, campaign, reversed_scan=False)
        other = _report(session, campaign, reversed_scan=True)
    households = [u["unit"] for u in plain["units"] if u["group"] == "household"]
    assert households == [f"bin:{tag}" for tag in TAGS]  # the items' order (their ids)
    assert [u["unit"] for u in other["units"] if u["group"] == "household"] == households
    assert other["intervals"]["households"] == plain["intervals"]["households"]


def test_a_campaigns_counts_come_by_status(sessions: sessionmaker[Session]) -> None:
    """The page shows them as given ('approuvé 1, en attente 2, ...'): PostgreSQL's hashed GROUP BY
    gave them in its own order, SQLite's sorted one by status."""
    statuses = ["sent", "pending", "approved", "rejected", "failed", "skipped", "retry"]
    with sessions() as session:
        campaign = campaign_on(session, [])
        session.add_all([Item(campaign_id=campaign.id, kind=HOUSEHOLD, level=1, target_key=f"bin:b{n}", bin_id=f"b{n}",
                              lifts=0, contaminated=0, categories={}, event_ids=[], reason="", status=status)
                         for n, status in enumerate(statuses)])
        session.commit()
        if session.get_bind().dialect.name == "postgresql":  # as on a large table: the planner hashes
            session.execute(text("SET enable_sort = off"))
        [summary] = campaign_summaries(session)
    assert list(summary["items"]) == sorted(statuses)
