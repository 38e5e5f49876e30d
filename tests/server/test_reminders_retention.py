"""Retention of the reminders' household-level data, by the server's hourly purge (``purge_expired``):
a campaign's household items are pseudonymised once it has been quiet for ``reminder_retention_days``
and its effect window is over; false detections are deleted after the same period; the campaign's
figures and the audit trail stay, and a campaign still being measured keeps its households.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.audit import AuditEntry
from server.config import ServerSettings
from server.ingest.evidence import EvidenceStore
from server.reminders.config import EffectRules
from server.reminders.effect import measure
from server.reminders.models import Campaign, FalseDetection, Item
from server.retention import purge_expired
from tests.server.reminders_city import engine_for

NOW = datetime(2027, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path,
             postgres_available: bool) -> Iterator[sessionmaker[Session]]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield sessionmaker(engine, expire_on_commit=False)


def campaign(session: Session, name: str, created_days_ago: int, sent_days_ago: int | None,
             effect: dict[str, Any] | None = None, exclude: dict[str, Any] | None = None) -> Campaign:
    sent = NOW - timedelta(days=sent_days_ago) if sent_days_ago is not None else None
    found = Campaign(name=name, created_by="test", created_at=NOW - timedelta(days=created_days_ago),
                     since=(NOW - timedelta(days=created_days_ago + 30)).date(),
                     until=(NOW - timedelta(days=created_days_ago + 1)).date(),
                     rules={"effect": effect or {"window_days": 30, "washout_days": 0}, "exclude": exclude or {}},
                     started_at=sent)
    session.add(found)
    session.flush()
    return found


def item(session: Session, campaign: Campaign, key: str, status: str, **extra: Any) -> Item:
    kind = "street" if key.startswith("street:") else "household"
    sent = campaign.started_at if status == "sent" else None
    row = Item(campaign_id=campaign.id, kind=kind, level=1, target_key=key, street_id=4,
               address_id=int(key.split(":")[1]) if key.startswith("address:") else None,
               bin_id=key.split(":")[1] if key.startswith("bin:") else None, lifts=9, contaminated=3,
               categories={"verre": 3}, event_ids=["e1", "e2"], reason="3 levées contaminées", status=status,
               sent_at=sent, reviewed_by="agent", reviewed_at=sent, review_note="Mme Martin a déménagé", **extra)
    session.add(row)
    session.flush()
    return row


def test_household_data_expire_with_their_campaign_not_before(sessions: sessionmaker[Session],
                                                              tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, database_url=str(sessions.kw["bind"].url))
    letters = tmp_path / "reminders" / "campagne-1"
    letters.mkdir(parents=True)
    letter = letters / "courrier-campagne-1-1.pdf"
    letter.write_bytes(b"%PDF Mme Martin, 12 rue Hoche")
    with sessions() as session:
        old = campaign(session, "ancienne", 500, 400, exclude={"addresses": [7], "bins": ["BAC-9"], "streets": [3]})
        sent = item(session, old, "address:12", "sent", channel="letter", send_detail=str(letter),
                    message_id="<x@metropole.fr>")
        pending = item(session, old, "bin:BAC-0042", "pending")
        street = item(session, old, "street:4", "sent", channel="print")
        # the last send 370 days ago, but a 365-day window with 10 days' washout: still being measured
        measured = campaign(session, "fenêtre longue", 500, 370, effect={"window_days": 365, "washout_days": 10})
        item(session, measured, "address:13", "sent")
        late = campaign(session, "envoyée tard", 500, 10)  # created long ago, sent ten days ago
        item(session, late, "bin:BAC-0043", "sent")
        session.add_all([FalseDetection(item_id=sent.id, event_id=f"e{n}", truck_id="t1", stream="recyclables",
                                        model_version="m", errors=[], note="bac de Mme Martin", reported_by="agent",
                                        reported_at=NOW - timedelta(days=days)) for n, days in ((1, 400), (2, 10))])
        session.commit()
        ids = {"old": old.id, "measured": measured.id, "late": late.id, "sent": sent.id, "pending": pending.id,
               "street": street.id}

    with sessions() as session, session.begin():
        report = purge_expired(session, EvidenceStore(tmp_path / "evidence", 10_000_000), settings, now=NOW)
    assert (report.reminder_items, report.false_detections) == (2, 1)

    with sessions() as session:
        gone, skipped = session.get(Item, ids["sent"]), session.get(Item, ids["pending"])
        assert gone is not None and skipped is not None
        assert (gone.target_key, gone.address_id, gone.bin_id, gone.event_ids) == (f"expired:{gone.id}", None,
                                                                                   None, [])
        assert gone.review_note is None and gone.send_detail is None and gone.message_id is None
        # the campaign's figures stay: kind, level, counts, status, channel, dates, reviewer
        assert (gone.kind, gone.level, gone.lifts, gone.contaminated, gone.categories, gone.status, gone.channel) \
            == ("household", 1, 9, 3, {"verre": 3}, "sent", "letter")
        assert gone.sent_at is not None and gone.reviewed_by == "agent"
        assert not letter.exists()  # the letter named the household
        assert (skipped.target_key, skipped.bin_id, skipped.status) == (f"expired:{skipped.id}", None, "skipped")
        assert skipped.send_detail == "données expirées (durée de conservation)"
        street_item = session.get(Item, ids["street"])
        assert street_item is not None and street_item.target_key == "street:4"
        assert session.get(Campaign, ids["old"]).rules["exclude"] == {  # type: ignore[union-attr]
            "addresses": [], "bins": [], "streets": [3]}
        kept = {i.target_key for i in session.scalars(select(Item).where(Item.campaign_id.in_(
            [ids["measured"], ids["late"]])))}
        assert kept == {"address:13", "bin:BAC-0043"}
        assert [f.event_id for f in session.scalars(select(FalseDetection))] == ["e2"]
        detail = session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "retention.purge"))
        assert detail is not None and "'reminder_items': 2" in detail and "'false_detections': 1" in detail
        # campaigns still within their window keep their households in the before/after report
        for key in ("measured", "late"):
            found = session.get(Campaign, ids[key])
            assert found is not None
            effect = measure(session, found, EffectRules(bootstrap=200), NOW)
            assert effect["groups"]["households"]["units"] == 1, key
        expired = measure(session, session.get(Campaign, ids["old"]), EffectRules(bootstrap=200), NOW)  # type: ignore[arg-type]
        assert expired["groups"]["households"]["units"] == 0 and expired["groups"]["targeted"]["units"] == 1

    with sessions() as session, session.begin():  # nothing left to do: the next run changes nothing
        again = purge_expired(session, EvidenceStore(tmp_path / "evidence", 10_000_000), settings, now=NOW)
    assert (again.reminder_items, again.false_detections) == (0, 0)
    later = NOW + timedelta(days=6)  # the long window is over: its households go too
    with sessions() as session, session.begin():
        assert purge_expired(session, EvidenceStore(tmp_path / "evidence", 10_000_000), settings,
                             now=later).reminder_items == 1


def test_the_purge_runs_without_the_reminders_tables(tmp_path: Path) -> None:
    """A database the reminders were never mounted on: nothing to expire, and no error."""
    from server.db import make_engine
    from server.migrate import upgrade_database

    engine = make_engine(f"sqlite:///{tmp_path / 'core.db'}")
    upgrade_database(engine)
    settings = ServerSettings(data_dir=tmp_path, database_url=str(engine.url))
    with sessionmaker(engine)() as session, session.begin():
        report = purge_expired(session, EvidenceStore(tmp_path / "evidence", 10_000_000), settings, now=NOW)
    assert (report.reminder_items, report.false_detections) == (0, 0)
    engine.dispose()
