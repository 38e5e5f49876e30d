"""The data-quality page's figures count one population once the retention has purged old lifts
(SQLite and PostgreSQL): its totals come from a roll-up kept for ever, its ambiguous lifts from
the raw lifts, its dead letters from their own table with its own retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import AMBIGUOUS_LIFTS, DeadLetter, Lift
from server.ingest.quality import first_whole_day
from server.retention import purge_expired
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.streets_fixture import import_rennes, points_on_streets


@pytest.fixture
def kept_30_days(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False, retention_days=30, dead_letter_retention_days=10)) as server:
        yield server


def seed_old_and_new(server: Server) -> None:
    """Lifts 40 and 2 days old on two streets, a third of them ambiguous; the old ones are then purged."""
    from server.streets.locator import Locator

    import_rennes(server.sessions)
    points = points_on_streets(server.sessions, 2)
    now = datetime.now(UTC)
    events = [lift_event(at=now - timedelta(days=age, minutes=i), gps=(p.lat, p.lon), heading=p.heading)
              for age in (40, 2) for i, p in enumerate(points * 3)]
    # Stored as a server with the longer retention of the past did (ingest refuses expired lifts).
    settings = server.settings.model_copy(update={"retention_days": 3650})
    with server.sessions() as session:
        locator = Locator.from_session(session)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: locator)
    messages = [MqttMessage(f"{settings.topic_prefix}/{e.truck_id}/lift", e.to_json().encode(), now) for e in events]
    with server.sessions() as session, session.begin():
        inbox.write(session, messages)
        ids = session.scalars(select(Lift.id).order_by(Lift.id)).all()
        session.execute(update(Lift).where(Lift.id.in_(ids[::3])).values(street_confidence=0.5))
        session.add_all([DeadLetter(received_at=now - timedelta(days=age), topic="t/benne-01/lift", truck_id="benne-01",
                                    reason="schema", detail="bad", payload=b"{}", payload_size=2)
                         for age in (20, 3, 0)])
    with server.sessions() as session, session.begin():
        report = purge_expired(session, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes),
                               server.settings)
    assert report.lifts == 6 and report.dead_letters == 1


def test_every_figure_counts_the_lifts_still_kept(kept_30_days: Server) -> None:
    server = kept_30_days
    seed_old_and_new(server)
    quality = server.client.get("/api/data-quality", headers=server.token("viewer")).json()
    since = first_whole_day(datetime.now(UTC), 30, server.settings.zone)
    with server.sessions() as session:
        kept = session.scalar(select(func.count()).select_from(Lift).where(Lift.day >= since))
        ambiguous = session.scalar(select(func.count()).select_from(Lift).where(AMBIGUOUS_LIFTS, Lift.day >= since))
    assert (kept, ambiguous) == (6, 2)
    # The 40-day-old lifts are purged: counting them in the totals set 12 lifts beside 2 ambiguous of 6.
    assert quality["lifts"] == quality["matched"] == kept
    assert quality["since"] == since.isoformat() and quality["ambiguous_since"] == since.isoformat()
    assert quality["ambiguous"] == ambiguous == sum(s["lifts"] for s in quality["ambiguous_by_street"])
    assert sum(b["lifts"] for b in quality["confidence_histogram"]) == kept
    # Dead letters: kept 10 days, those of the period still kept; the page says from when.
    assert quality["dead_letters"] == 2
    assert quality["dead_letters_since"] == first_whole_day(datetime.now(UTC), 10, server.settings.zone).isoformat()


def test_a_period_asked_before_the_lifts_kept_says_where_the_ambiguous_count_starts(kept_30_days: Server) -> None:
    server = kept_30_days
    seed_old_and_new(server)
    viewer = server.token("viewer")
    asked = (datetime.now(UTC) - timedelta(days=60)).date()
    # The dead letters of the period asked, not of all time: yesterday on, one (today's).
    yesterday = (datetime.now(UTC).astimezone(server.settings.zone) - timedelta(days=1)).date()
    recent = server.client.get("/api/data-quality", params={"since": yesterday.isoformat()}, headers=viewer).json()
    assert recent["dead_letters"] == 1 and recent["dead_letters_since"] == yesterday.isoformat()
    quality = server.client.get("/api/data-quality", params={"since": asked.isoformat()}, headers=viewer).json()
    since = first_whole_day(datetime.now(UTC), 30, server.settings.zone)
    assert quality["since"] == asked.isoformat() and quality["lifts"] == 12  # the roll-up, kept for ever
    assert quality["ambiguous_since"] == since.isoformat() and quality["ambiguous"] == 2


@pytest.mark.parametrize("household_level", [False, True])
def test_dead_letters_are_counted_from_the_first_day_every_kind_is_still_kept(
        make_settings: Any, run_server: Any, household_level: bool) -> None:
    """A lift's letter goes after street_level_letter_days (30) while the household level is off, a
    photo's with the photos (evidence_retention_days): counted from dead_letter_retention_days (90),
    the page said « since » a day from which most letters (those of lifts) were already gone."""
    settings = make_settings(ingest_enabled=False, dead_letter_retention_days=90, evidence_retention_days=45,
                             street_level_letter_days=20, household_level=household_level)
    with run_server(settings) as server:
        quality = server.client.get("/api/data-quality", headers=server.token("viewer")).json()
    days = 45 if household_level else 20
    assert quality["dead_letters_since"] == first_whole_day(datetime.now(UTC), days, settings.zone).isoformat()
