"""French writes the first day of a month « 1er » (« 1er mars 2026 »), every other day as a number;
English stays as Intl writes it. Every date the pages write goes through Trivue.fmt.date."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import Browser
from tests.dashboard.test_rgaa import english

pytestmark = pytest.mark.slow

# (what a page passes fmt.date: a collection day or a moment, French, English)
DATES = [
    ("2026-03-01", "1er mars 2026", "1 Mar 2026"),
    ("2026-01-01", "1er janv. 2026", "1 Jan 2026"),
    ("2026-03-11", "11 mars 2026", "11 Mar 2026"),  # a 1 that is not the first
    ("2026-03-21", "21 mars 2026", "21 Mar 2026"),
    ("2026-03-31", "31 mars 2026", "31 Mar 2026"),
    ("2026-11-01T09:30:00+01:00", "1er nov. 2026", "1 Nov 2026"),  # a moment, the collectivité's day
    ("2026-10-31T23:30:00Z", "1er nov. 2026", "1 Nov 2026"),  # 00:30 in Paris: already the 1st
]


def test_the_first_of_the_month_is_1er_in_french_only(browser: Browser) -> None:
    browser.login(path="/qualite")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    written = page.evaluate("(days) => days.map((d) => Trivue.fmt.date(d))", [d for d, _, _ in DATES])
    assert [w.replace("\u202f", " ") for w in written] == [fr for _, fr, _ in DATES]
    english(browser)
    browser.goto("/qualite")
    page.wait_for_selector("body[data-ready=true]")
    written = page.evaluate("(days) => days.map((d) => Trivue.fmt.date(d))", [d for d, _, _ in DATES])
    assert written == [en for _, _, en in DATES]
