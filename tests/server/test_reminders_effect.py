"""Effect measurement on lifts stored with the server's write path (``insert_lifts``): a known
drop in targeted streets is found, stable controls are matched, and thin data says so."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.aggregates import insert_lifts, lift_row
from server.effect import Unit, match_controls, measure
from server.geo import Match
from server.reminder_config import EffectRules
from server.reminder_store import Campaign, Item
from tests.server.reminders_city import MODEL, RULES, engine_for
from vision.schema import GpsFix, LiftEvent, Stream

CUT = date(2026, 10, 1)
ZONE = ZoneInfo("Europe/Paris")


class StreetByLatitude:
    """The matcher's interface for synthetic streets: street id = integer part of lat * 1000."""

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> Match:
        sid = round(lat * 1000) - 48000
        return Match(sid, f"Rue {sid}", "Testville", sid, 2.0, None, None, None, 0.9)


def seed(session: Session, street: int, rate_before: float, rate_after: float, lifts: int, rng: random.Random) -> None:
    rows = []
    for period, rate in (("before", rate_before), ("after", rate_after)):
        for n in range(lifts):
            day = CUT + timedelta(days=(n % 30) - 30 if period == "before" else n % 30)
            when = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
            items = {"glass": 1} if rng.random() < rate else {"bottle": 1}
            verdict = RULES.judge(Stream.recyclables, items)
            event = LiftEvent(event_id=uuid.uuid4(), truck_id="t1", sequence=n, stream=Stream.recyclables,
                              started_at=when, ended_at=when + timedelta(seconds=5),
                              gps=GpsFix(lat=48 + street / 1000, lon=1.9), counts=items, errors=list(verdict.errors),
                              contaminated=verdict.contaminated, score=verdict.score, model=MODEL, frames=10)
            rows.append(lift_row(event, when, ZONE, StreetByLatitude()))
    insert_lifts(session, rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path,
             postgres_available: bool) -> Iterator[sessionmaker[Session]]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield sessionmaker(engine, expire_on_commit=False)


def campaign_on(session: Session, streets: list[int]) -> Campaign:
    campaign = Campaign(name="Test", created_by="test", since=CUT - timedelta(days=30), until=CUT - timedelta(days=1),
                        rules={}, started_at=datetime.combine(CUT, datetime.min.time(), UTC))
    session.add(campaign)
    session.flush()
    for sid in streets:
        session.add(Item(campaign_id=campaign.id, kind="street", level=1, target_key=f"street:{sid}", street_id=sid,
                         lifts=0, contaminated=0, categories={}, event_ids=[], reason="", status="sent"))
    session.flush()
    return campaign


def test_the_cut_off_is_the_local_day_of_the_first_send(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        campaign = campaign_on(session, [1])
        campaign.started_at = datetime(2026, 9, 30, 22, 30, tzinfo=UTC)  # 00:30 on 1 October in Paris
        report = measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=60), ZONE)
        assert report["cut_off"] == "2026-10-01"
        assert report["windows"]["before"][1] == "2026-09-30"
        assert measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=60))["cut_off"] == \
            "2026-09-30"  # in UTC it was still the 30th


def test_a_real_drop_is_found_against_matched_controls(sessions: sessionmaker[Session]) -> None:
    rng = random.Random(3)
    with sessions() as session:
        for sid in range(1, 7):  # targeted: 30 % -> 12 %
            seed(session, sid, 0.30, 0.12, 120, rng)
        for sid in range(10, 22):  # untargeted, alike before, unchanged after
            seed(session, sid, 0.30, 0.29, 120, rng)
        seed(session, 30, 0.02, 0.02, 120, rng)  # a clean street: must not be chosen as a control
        campaign = campaign_on(session, list(range(1, 7)))
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=500), CUT + timedelta(days=60))
    assert report["status"] == "decrease", report["text"]
    groups = report["groups"]
    assert groups["targeted"]["units"] == 6 and groups["control"]["units"] == 12
    assert "street:30" not in {c for cs in report["matches"].values() for c in cs}
    assert 0.22 < groups["targeted"]["before"]["rate"] < 0.38 and groups["targeted"]["after"]["rate"] < 0.2
    low, high = report["intervals"]["did"]
    assert low < groups["targeted"]["change"] - groups["control"]["change"] < high < 0
    before = groups["targeted"]["before"]
    assert before["ci"][0] < before["rate"] < before["ci"][1]


def test_too_few_lifts_to_conclude(sessions: sessionmaker[Session]) -> None:
    rng = random.Random(4)
    with sessions() as session:
        seed(session, 1, 0.5, 0.0, 8, rng)  # a spectacular drop... on 8 lifts
        seed(session, 2, 0.5, 0.5, 8, rng)
        campaign = campaign_on(session, [1])
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=300), CUT + timedelta(days=60))
    assert report["status"] == "too_few" and "Trop peu de levées pour conclure" in report["text"]


def test_not_sent_yet(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        campaign = campaign_on(session, [1])
        campaign.started_at = None
        assert measure(session, campaign, EffectRules(), CUT)["status"] == "not_sent"


def test_matching_prefers_similar_rate_and_size() -> None:
    treated = [Unit("street:1", (100, 30), (100, 10))]
    pool = [Unit("street:2", (100, 2), (100, 2)), Unit("street:3", (90, 28), (90, 27)),
            Unit("street:4", (5, 2), (5, 2)), Unit("street:5", (110, 33), (100, 30))]
    assert [u.key for u in match_controls(treated, pool, 2)["street:1"]] == ["street:5", "street:3"]  # nearest first
