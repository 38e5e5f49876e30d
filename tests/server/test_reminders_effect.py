"""Effect measurement on lifts stored with the server's write path (``insert_lifts``): a known
drop in targeted streets is found, the cut-off is the send time, controls are matched, frozen
and checked for balance, and thin or unbalanced data says so."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.ingest.aggregates import insert_lifts, lift_row
from server.reminders.config import EffectRules
from server.reminders.effect import effect_text, measure
from server.reminders.matching import Candidate, balance, match
from server.reminders.models import Campaign, Item
from server.streets.locator import Match
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


def seed(session: Session, street: int, rate_before: float, rate_after: float, lifts: int, rng: random.Random,
         hour: float = 9) -> None:
    rows = []
    for period, rate in (("before", rate_before), ("after", rate_after)):
        for n in range(lifts):
            day = CUT + timedelta(days=(n % 30) - 30 if period == "before" else n % 30)
            when = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
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


def campaign_on(session: Session, streets: list[int], sent: datetime | None = None) -> Campaign:
    sent = sent or datetime.combine(CUT, datetime.min.time(), UTC)
    campaign = Campaign(name="Test", created_by="test", since=CUT - timedelta(days=30), until=CUT - timedelta(days=1),
                        rules={}, started_at=sent)
    session.add(campaign)
    session.flush()
    for sid in streets:
        session.add(Item(campaign_id=campaign.id, kind="street", level=1, target_key=f"street:{sid}", street_id=sid,
                         lifts=0, contaminated=0, categories={}, event_ids=[], reason="", status="sent", sent_at=sent))
    session.flush()
    return campaign


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


def test_matching_prefers_similar_rate_size_commune_and_day() -> None:
    treated = [Candidate("street:1", "Orléans", "recyclables", 1, 100, 30)]
    pool = [Candidate("street:2", "Orléans", "recyclables", 1, 100, 2),
            Candidate("street:3", "Orléans", "recyclables", 1, 90, 28),
            Candidate("street:4", "Orléans", "recyclables", 1, 5, 2),
            Candidate("street:5", "Orléans", "recyclables", 1, 110, 33),
            Candidate("street:6", "Olivet", "recyclables", 1, 100, 30),  # same figures, another commune
            Candidate("street:7", "Orléans", "recyclables", 4, 100, 30)]  # another collection day
    assert match(treated, pool, 2)["street:1"] == ["street:5", "street:3"]  # nearest first
    smds = balance(treated, [pool[0], pool[0]])
    assert smds["rate"] is not None and smds["rate"] > 0.8  # 30 % against 2 %: far beyond 0.25
    assert abs(balance(treated, [pool[2], pool[4]])["rate"] or 1) < 0.05  # 30 % against 30.5 %


def test_cut_off_is_the_send_time_not_the_day(sessions: sessionmaker[Session]) -> None:
    """Sent at 17:49: the morning's lifts of that day are before, the evening's after."""
    rng = random.Random(5)
    sent = datetime.combine(CUT, datetime.min.time(), UTC) + timedelta(hours=17, minutes=49)
    with sessions() as session:
        for sid in range(1, 4):
            seed(session, sid, 0.3, 0.3, 60, rng, hour=8)  # collected at 08:00 every day
        for sid in range(10, 16):
            seed(session, sid, 0.3, 0.3, 60, rng, hour=19)  # collected at 19:00
        campaign = campaign_on(session, [1, 2, 3], sent)
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=200, min_lifts=10), CUT + timedelta(days=60))
    units = {u["unit"]: u for u in report["units"]}
    # Two lifts a day. The send day's 08:00 lifts fall before (a date cut-off put them after); the
    # window is 30 days to the minute, so the 08:00 lifts 30 days earlier fall out of it.
    assert units["street:1"]["lifts_before"] == 60 and units["street:1"]["lifts_after"] == 58
    controls = [u for u in report["units"] if u["group"] == "control"]
    assert controls and all(u["lifts_before"] == 60 and u["lifts_after"] == 60 for u in controls)
    assert report["windows"]["before"][1] == sent.isoformat()


def test_washout_drops_the_first_days(sessions: sessionmaker[Session]) -> None:
    rng = random.Random(6)
    with sessions() as session:
        seed(session, 1, 0.3, 0.3, 60, rng)
        seed(session, 10, 0.3, 0.3, 60, rng)
        campaign = campaign_on(session, [1])
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=200, washout_days=3), CUT + timedelta(days=60))
    unit = next(u for u in report["units"] if u["unit"] == "street:1")
    assert unit["lifts_after"] == 60 - 6  # days 0, 1 and 2 after the send: 2 lifts a day in the seeding
    assert report["washout_days"] == 3


def test_unbalanced_controls_refuse_to_conclude(sessions: sessionmaker[Session]) -> None:
    """Targeted streets at 60 %, the only untargeted ones at 8 %: a dramatic 'drop' is not claimed."""
    rng = random.Random(7)
    with sessions() as session:
        for sid in range(1, 5):
            seed(session, sid, 0.60, 0.30, 150, rng)
        for sid in range(10, 18):
            seed(session, sid, 0.08, 0.08, 150, rng)
        campaign = campaign_on(session, list(range(1, 5)))
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=300), CUT + timedelta(days=60))
    assert report["status"] == "unbalanced" and "ne ressemblent pas assez" in report["text"]
    assert report["balance"]["ok"] is False and report["balance"]["rate"] > 0.25
    assert report["estimate"]["conclusive"] is False
    assert "indicatif seulement, ne permet pas de conclure" in effect_text(report)


def test_controls_are_frozen_when_the_campaign_is_sent(sessions: sessionmaker[Session]) -> None:
    """New lifts (and a new street looking exactly like the targeted ones) change no control."""
    from server.reminders.effect import freeze_controls

    rng = random.Random(8)
    with sessions() as session:
        for sid in range(1, 4):
            seed(session, sid, 0.3, 0.1, 100, rng)
        for sid in range(10, 20):
            seed(session, sid, 0.2 + sid / 100, 0.25, 100, rng)
        campaign = campaign_on(session, [1, 2, 3])
        frozen = freeze_controls(session, campaign, EffectRules())
        session.commit()
        seed(session, 40, 0.3, 0.3, 200, rng)  # arrives later: a perfect match, too late
        report = measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=60))
    assert report["matches"] == frozen["pairs"] and "street:40" not in str(report["matches"])
    assert report["matching"]["matched_at"] == frozen["matched_at"]
    assert report["series"]["weeks"][0] == -4 and len(report["series"]["targeted"]) == 8  # whole weeks
    assert report["estimate"]["method"] == "difference_in_differences"


def test_one_volume_per_group_gives_strict_json_and_no_conclusion(sessions: sessionmaker[Session], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """One targeted street, one comparison street, different lift counts: neither group's volume
    varies, so its standardised difference was -infinity: ``report --json`` printed ``-Infinity``
    (not JSON), the API answered 500, and the verdict read "écart standardisé inf"."""
    import json

    from trivue.cli import main

    assert balance([Candidate("street:1", "A", "r", 0, 120, 30)],
                   [Candidate("street:2", "A", "r", 0, 80, 20)])["log_lifts"] is None
    assert balance([Candidate("street:1", "A", "r", 0, 120, 30)],
                   [Candidate("street:2", "A", "r", 0, 120, 20)])["log_lifts"] == 0.0
    rng = random.Random(9)
    with sessions() as session:
        seed(session, 1, 0.3, 0.1, 120, rng)
        seed(session, 10, 0.3, 0.3, 80, rng)
        campaign = campaign_on(session, [1])
        session.commit()
        report = measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=60))
    text = json.dumps(report, allow_nan=False)  # raised ValueError on the infinity
    assert report["balance"]["log_lifts"] is None and report["balance"]["ok"] is False
    assert report["status"] == "unbalanced" and "écart standardisé non défini" in report["text"]
    assert "inf" not in report["text"] and json.loads(text)["status"] == "unbalanced"
    assert "volume non défini" in effect_text(report) and "volume undefined" in effect_text(report, "en")

    engine = sessions.kw["bind"]
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    assert main(["reminders", "report", "--campaign", str(campaign.id), "--json"]) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert printed["balance"]["log_lifts"] is None and printed["status"] == "unbalanced"
    monkeypatch.setenv("TRIVUE_LANG", "en")
    assert main(["reminders", "report", "--campaign", str(campaign.id)]) == 0
    out = capsys.readouterr().out
    assert "standardised difference undefined" in out and "volume undefined" in out


def test_the_weekly_plot_draws_whole_weeks_only(sessions: sessionmaker[Session]) -> None:
    """A 30-day window is 4 weeks and 2 days: the plot drew those 2 days as week -5 (and week 4 after),
    a point from a fraction of the streets' collections that swung far from its neighbours (100 % on
    3 lifts in a demo). Each plotted week is now a whole week inside its window."""
    rng = random.Random(9)
    with sessions() as session:
        for sid in range(1, 4):
            seed(session, sid, 0.3, 0.2, 210, rng)
        for sid in range(10, 16):
            seed(session, sid, 0.3, 0.3, 210, rng)
        campaign = campaign_on(session, [1, 2, 3])
        report = measure(session, campaign, EffectRules(bootstrap=200), CUT + timedelta(days=60))
    series = report["series"]
    assert series["weeks"] == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert len(set(series["targeted_lifts"])) == 1, series  # every week seven days of the same streets
    assert None not in series["targeted"] and None not in series["control"]


def test_a_week_with_too_few_lifts_is_not_plotted(sessions: sessionmaker[Session]) -> None:
    """A live campaign with little history plotted 100 % from 3 lifts. A week's rate is drawn only from
    ``effect.min_lifts`` lifts, the floor under which the verdict says « Trop peu de levées »; each
    week's lifts are in the series, drawn or not, and the floor with them."""
    rng = random.Random(4)
    with sessions() as session:
        for sid in range(1, 3):
            seed(session, sid, 0.3, 0.2, 60, rng)  # 120 lifts a period, ~28 a week
        for sid in range(10, 14):
            seed(session, sid, 0.3, 0.3, 60, rng)  # ~56 a week
        campaign = campaign_on(session, [1, 2])
        report = measure(session, campaign, EffectRules(bootstrap=200, min_lifts=40), CUT + timedelta(days=60))
    series = report["series"]
    assert series["min_lifts"] == 40
    assert all(n < 40 for n in series["targeted_lifts"]) and all(n >= 40 for n in series["control_lifts"]), series
    assert series["targeted"] == [None] * len(series["weeks"])  # none drawn from fewer lifts than the floor
    assert None not in series["control"]
