"""The targeting rules on a real little city (Rennes streets, BAN addresses, lifts through the
server's ingest), on SQLite and on PostgreSQL when it is reachable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from server.db import utcnow
from server.ingest.models import Lift
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import ReminderConfigError, RemindersConfig, load_targeting
from server.reminders.households import opt_out
from server.reminders.models import SENT, Item
from server.reminders.plan import make_plan
from tests.server.reminders_city import City, engine_for, seed_city

TODAY = date(2026, 11, 20)


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[City]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def by_key(plan):  # type: ignore[no-untyped-def]
    return {t.key: t for t in plan.targets}


def test_households_streets_and_thanks(city: City) -> None:
    a = city.addresses
    with city.sessions() as session:
        opt_out(session, f"address:{a['opted_out'].id}", "test", "courrier du foyer")
        session.commit()
        plan = make_plan(session, RemindersConfig(), TODAY)
    targets = by_key(plan)
    target = targets[f"address:{a['target'].id}"]
    assert (target.kind, target.level, target.action) == ("household", 1, "information")
    assert (target.contaminated, target.lifts) == (3, 5)  # clean lifts of the household counted too
    assert target.categories == {"verre": 2, "sac_ferme": 1, "biodechet": 1}
    assert len(target.event_ids) == 3 and set(target.event_ids) <= set(city.events["target"])
    assert "3 levées contaminées sur 5" in target.reason
    assert f"address:{a['once'].id}" not in targets  # one contaminated lift: under the threshold
    skipped = {s.key: s.reason for s in plan.skipped}
    assert "opposition" in skipped[f"address:{a['opted_out'].id}"]
    rfid = targets["bin:BAC-0042"]
    assert rfid.bin_id == "BAC-0042" and rfid.contaminated == 2 and "RFID" in rfid.reason
    street = targets[f"street:{city.streets['dirty']}"]
    assert street.kind == "street" and "6 sans foyer sûr" in street.reason
    assert f"street:{city.streets['clean']}:thanks" in targets
    assert plan.street_only_lifts == 6


def test_low_confidence_lifts_never_reach_a_household(city: City) -> None:
    """Six poor fixes on top of the target's address: its street is told, the house never is."""
    with city.sessions() as session:
        plan = make_plan(session, RemindersConfig(household={"min_contaminated_lifts": 4}), TODAY)
    targets = by_key(plan)
    assert f"address:{city.addresses['target'].id}" not in targets  # 3 sure lifts < 4, the 6 unsure ones don't count
    assert f"street:{city.streets['dirty']}" in targets
    assert all(t.kind != "household" or t.key == "bin:BAC-0042" for t in plan.targets)


def test_cooldown_then_escalation(city: City) -> None:
    key = f"address:{city.addresses['target'].id}"
    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c1", "test", rules)
        session.flush()
        item = session.query(Item).filter_by(campaign_id=campaign.id, target_key=key).one()
        again = by_key(make_plan(session, rules, TODAY))
        assert key not in again  # still waiting for review in campaign 1
        review(session, item.id, Decision(True), "test")
        item.status, item.sent_at = SENT, utcnow() - timedelta(days=10)
        session.commit()
        skipped = {s.key: s.reason for s in make_plan(session, rules, TODAY).skipped}
        assert "délai entre deux messages" in skipped[key]
        item.sent_at = utcnow() - timedelta(days=40)
        session.commit()
        later = by_key(make_plan(session, rules, TODAY))[key]
    assert (later.level, later.action) == (2, "rappel") and "niveau 1 déjà envoyé" in later.reason


def test_quiet_period_and_exclusions(city: City) -> None:
    quiet = RemindersConfig(quiet_periods=[{"start": "11-15", "end": "11-30", "reason": "réserve électorale"}])
    with city.sessions() as session:
        plan = make_plan(session, quiet, TODAY)
        assert plan.targets == () and plan.quiet == "réserve électorale"
        assert all("période calme" in s.reason for s in plan.skipped) and plan.skipped
        excluded = RemindersConfig(exclude={"bins": ["BAC-0042"], "streets": [city.streets["clean"]]})
        targets = by_key(make_plan(session, excluded, TODAY))
    assert "bin:BAC-0042" not in targets and f"street:{city.streets['clean']}:thanks" not in targets


def test_rules_file_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("household:\n  min_contaminated_lifts: 2\n  colour: blue\n")
    with pytest.raises(ReminderConfigError, match=r"household\.colour: Extra inputs are not permitted"):
        load_targeting(path)
    path.write_text("levels:\n  - action: information\n  - action: refus_de_collecte\n")
    with pytest.raises(ReminderConfigError, match=r"levels\.1\.action.*refus_de_collecte"):
        load_targeting(path)
    path.write_text("quiet_periods:\n  - {start: '02-30', end: '03-02', reason: x}\n")
    with pytest.raises(ReminderConfigError, match="02-30"):
        load_targeting(path)
    shipped = Path(__file__).resolve().parents[2] / "reminders" / "targeting.yaml"
    assert load_targeting(shipped) == RemindersConfig()  # the documented file is the defaults


def test_quiet_period_spanning_new_year() -> None:
    config = RemindersConfig(quiet_periods=[{"start": "12-20", "end": "01-05", "reason": "fêtes"}])
    assert config.quiet(date(2026, 12, 31)) and config.quiet(date(2027, 1, 3))
    assert config.quiet(date(2027, 1, 6)) is None and config.quiet(date(2026, 12, 19)) is None


def test_synthetic_addresses_are_no_households(city: City) -> None:
    """Demo addresses (generated where no address file exists) never receive a letter."""
    from server.streets.models import Address

    with city.sessions() as session:
        session.get(Address, city.addresses["target"].id).synthetic = True
        session.commit()
        targets = by_key(make_plan(session, RemindersConfig(), TODAY))
    assert f"address:{city.addresses['target'].id}" not in targets
    assert f"street:{city.streets['dirty']}" in targets


def test_false_detections_no_longer_count(city: City) -> None:
    key = f"address:{city.addresses['target'].id}"
    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c1", "test", rules)
        session.flush()
        item = session.query(Item).filter_by(campaign_id=campaign.id, target_key=key).one()
        review(session, item.id, Decision(False, "false_detection", "gobelets, pas du verre"), "test")
        session.commit()
        assert key not in by_key(make_plan(session, rules, TODAY))  # its 3 lifts were filed as false detections


def test_street_notices_never_below_the_configured_rate(city: City) -> None:
    """Six contaminated lifts without a sure household on a street at 40 %: enough lifts without
    a household, but under a 50 % threshold the street gets no notice; few lifts qualify above it."""
    with city.sessions() as session:
        strict = make_plan(session, RemindersConfig(street={"min_rate": 0.5, "min_unattributed": 1}), TODAY)
        few = make_plan(session, RemindersConfig(street={"min_rate": 0.3, "min_lifts": 500,
                                                         "min_unattributed": 6}), TODAY)
        too_few = make_plan(session, RemindersConfig(street={"min_rate": 0.3, "min_lifts": 500,
                                                             "min_unattributed": 7}), TODAY)
    dirty = f"street:{city.streets['dirty']}"
    assert dirty not in by_key(strict)
    assert dirty in by_key(few) and dirty not in by_key(too_few)


def test_street_notices_read_no_lifts_of_their_own(tmp_path: Path) -> None:
    """The plan reads the lifts a fixed number of times, not once more per street notice: each
    notice read its street's lifts again, by ``day``, which SQLite walked over the street's whole
    history in ``ix_lifts_street_started`` (three years of a métropole: 1,061 street notices,
    16 ms each, a 17 s plan). One read of the window's contaminated lifts and two counts of the
    households' lifts (by bin, by address) are the whole budget."""
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        reads: list[str] = []

        def keep(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
            if "FROM lifts" in sql:
                reads.append(sql)

        event.listen(engine, "before_cursor_execute", keep)
        with city.sessions() as session:
            plan = make_plan(session, RemindersConfig(), TODAY)
        event.remove(engine, "before_cursor_execute", keep)
    streets = [t for t in plan.targets if t.kind == "street"]
    assert streets and all(t.event_ids for t in streets)  # the notices still carry their photos
    assert len(reads) <= 3, reads


def test_lifts_the_camera_could_not_see_count_for_no_household(city: City) -> None:
    """A lift sent with ``view_unusable`` (wire 1.4) was not judged: neither among the household's
    contaminated lifts nor among the lifts they are counted out of."""
    key = f"address:{city.addresses['target'].id}"
    events = city.events["target"]
    with city.sessions() as session:
        rows = session.query(Lift).filter(Lift.event_id.in_(events)).all()
        clean = next(r for r in rows if not r.contaminated)
        clean.view_unusable = "dark"
        session.commit()
        target = by_key(make_plan(session, RemindersConfig(), TODAY))[key]
        assert (target.contaminated, target.lifts) == (3, 4)
        assert "3 levées contaminées sur 4" in target.reason
        for row in rows:
            row.view_unusable = "blurred"
        session.commit()
        assert key not in by_key(make_plan(session, RemindersConfig(), TODAY))
