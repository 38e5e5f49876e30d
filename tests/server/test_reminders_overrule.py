"""Reminders and overruled lifts (``server.ingest.overrule``): a lift a manager judged the truck wrong on
never makes a household eligible, and is clean in the effect's before/after counts. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from server.db import utcnow
from server.ingest.overrule import overrule, undo_overrule
from server.reminders.config import EffectRules, RemindersConfig
from server.reminders.effect import _street_units, _Windows
from server.reminders.plan import make_plan
from tests.server.reminders_city import City, engine_for, seed_city

TODAY = date(2026, 11, 20)


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[City]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def targets(city: City) -> dict[str, int]:
    with city.sessions() as session:
        return {t.key: t.contaminated for t in make_plan(session, RemindersConfig(), TODAY).targets}


def test_an_overruled_lift_never_makes_a_household_eligible(city: City) -> None:
    bin_key = "bin:BAC-0042"  # two contaminated lifts: exactly the threshold
    assert targets(city)[bin_key] == 2
    disputed = city.events["bin"][0]
    with city.sessions() as session:
        assert overrule(session, disputed, "user:gestionnaire", "bac vide, erreur du modèle", utcnow()).changed
        session.commit()
    assert bin_key not in targets(city)
    with city.sessions() as session:
        assert undo_overrule(session, disputed, utcnow()).changed
        session.commit()
    assert targets(city)[bin_key] == 2


def test_an_overruled_lift_is_clean_in_the_effect_counts(city: City) -> None:
    street = city.streets["dirty"]
    key = f"street:{street}"
    cut = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(days=1)
    windows = _Windows(EffectRules(), cut + timedelta(days=60))

    def before() -> tuple[int, int]:
        with city.sessions() as session:
            return _street_units(session, {key: cut}, windows, None)[key].before

    lifts, contaminated = before()
    assert contaminated >= 3
    with city.sessions() as session:
        overrule(session, city.events["target"][0], "user:gestionnaire", "erreur du modèle", utcnow())
        session.commit()
    assert before() == (lifts, contaminated - 1)
