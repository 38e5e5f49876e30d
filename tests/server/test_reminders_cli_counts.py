"""Counts agree with their noun in the reminders' command-line output, in French and in English:
« 1 levées contaminées », "over 1 lifts", "1 columns" were printed where one lift or one column was meant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from server.reminders.config import HouseholdRules, RemindersConfig
from server.reminders.contacts_import import read_contact_file
from server.reminders.effect import effect_text
from server.reminders.plan import make_plan
from server.reminders.wording import translate
from tests.server.reminders_city import City, engine_for, seed_city

TODAY = date(2026, 11, 20)


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    with engine_for("sqlite", tmp_path, False) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def test_a_household_with_one_contaminated_lift_reads_in_the_singular(city: City) -> None:
    """``min_contaminated_lifts: 1`` (a strict service): the household with a single bad lift is targeted."""
    rules = RemindersConfig(household=HouseholdRules(min_contaminated_lifts=1))
    with city.sessions() as session:
        plan = make_plan(session, rules, TODAY)
    reason = {t.key: t.reason for t in plan.targets}[f"address:{city.addresses['once'].id}"]
    assert reason.startswith("1 levée contaminée sur "), reason
    english = translate(reason, "en")
    assert english.startswith("1 contaminated lift out of "), english
    many = {t.key: t.reason for t in plan.targets}[f"address:{city.addresses['target'].id}"]
    assert many.startswith("3 levées contaminées sur 5")
    assert translate(many, "en").startswith("3 contaminated lifts out of 5")


def report(lifts: int) -> dict[str, Any]:
    period = {"rate": 1.0 if lifts else None, "ci": [0.2, 1.0], "lifts": lifts}
    return {"campaign": 4, "text": "Pas de conclusion.", "status": "too_few",
            "groups": {"targeted": {"units": 1, "before": period, "after": period}},
            "balance": {"rate": None, "log_lifts": None, "max_smd": 0.25},
            "estimate": {"did": None, "ci": None, "label": "différence de différences", "draws": 0,
                         "conclusive": False}}


@pytest.mark.parametrize(("lang", "one", "two"), [("en", "over 1 lift", "over 2 lifts"),
                                                  ("fr", "sur 1 levée", "sur 2 levées")])
def test_the_effect_report_counts_one_lift_in_the_singular(lang: str, one: str, two: str) -> None:
    text = effect_text(report(1), lang)
    assert one in text and one + "s" not in text, text
    assert two in effect_text(report(2), lang)


def test_a_contact_line_against_a_one_column_header_says_one_column() -> None:
    refused = read_contact_file("key\naddress:1;Martin;x@example.fr\n").errors
    assert refused and "3 champs pour 1 colonne " in refused[0], refused
    assert "3 fields for 1 column " in translate(refused[0], "en")
