"""« Rues les plus améliorées » against the same period last year, for the yearly review (2026-12).

The waste department's director reports to elected officials on "the same period last year": the
ranking only compared a selection with the period just before it. A choice « Comparer avec »
(« Période précédente », the default, or « Même période l'an dernier ») now picks the period
compared with, is kept in the link, and is said in the line under the heading and in the hint.

The API is answered by the test (``page.route``): two streets built so that each improved against
one of the two periods only, on dates (a leap year's February) the seeded city has no lift on.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Route, expect
from scipy.stats import binomtest

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow

YEAR_STREET, PREVIOUS_STREET = 990001, 990002
NOW = ("2024-02-01", "2024-02-29")  # a whole leap-year February
PREVIOUS = ("2024-01-01", "2024-01-31")  # as many whole months just before
LAST_YEAR = ("2023-02-01", "2023-02-28")  # the same dates a year before: the 29th maps to the 28th


def _street(street_id: int, name: str, contaminated: int, lifts: int) -> dict[str, Any]:
    low, high = binomtest(contaminated, lifts).proportion_ci(method="wilson")
    return {"street_id": street_id, "name": name, "commune": "Rennes", "lifts": lifts,
            "contaminated": contaminated, "rate": contaminated / lifts, "ci_low": low, "ci_high": high,
            "top_errors": []}


def _period(year_street: tuple[int, int], previous_street: tuple[int, int]) -> list[dict[str, Any]]:
    return [_street(YEAR_STREET, "Rue de l'An Dernier", *year_street),
            _street(PREVIOUS_STREET, "Rue du Mois Dernier", *previous_street)]


# (contaminated, lifts) of each street: both at 2/60 now; one was at 30/60 a year ago (a drop far
# beyond chance) and 3/60 last month, the other the reverse.
ANSWERS = {NOW: _period((2, 60), (2, 60)), PREVIOUS: _period((3, 60), (30, 60)),
           LAST_YEAR: _period((30, 60), (3, 60))}


def _answer(asked: list[tuple[str, str]]) -> Any:
    def handle(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        period = (query["since"][0], query["until"][0])
        asked.append(period)
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"streets": ANSWERS.get(period, [])}))
    return handle


def _listed(browser: Browser) -> set[int]:
    links = browser.page.locator("#improved tbody th a")
    return {int(links.nth(i).get_attribute("href").split("/")[2].split("?")[0]) for i in range(links.count())}


def _day(browser: Browser, day: str) -> str:
    return browser.page.evaluate("(d) => Trivue.fmt.date(d)", day)


def test_most_improved_compares_with_the_same_period_last_year_when_chosen(browser: Browser) -> None:
    asked: list[tuple[str, str]] = []
    browser.page.route("**/api/streets?*", _answer(asked))
    browser.login(path=f"/classement?period=custom&since={NOW[0]}&until={NOW[1]}")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    choice = page.get_by_label("Comparer avec")
    against = page.locator("#improved-against")
    hint = page.locator("section[aria-labelledby=improved-title] p.muted")
    # The default: the period just before, as before; the link stays as it was.
    assert choice.locator("option:checked").inner_text() == "Période précédente"
    assert sorted(asked) == [PREVIOUS, NOW]
    assert _listed(browser) == {PREVIOUS_STREET}
    said = against.inner_text()
    assert "période précédente" in said and _day(browser, PREVIOUS[0]) in said and _day(browser, PREVIOUS[1]) in said
    assert "compare" not in page.url
    assert "hasard" in hint.inner_text() and "l'an dernier" not in hint.inner_text()

    asked.clear()
    choice.select_option(label="Même période l'an dernier")
    expect(against).to_contain_text(_day(browser, LAST_YEAR[1]))  # 28 February 2023, not 1 March
    said = against.inner_text()
    assert "l'an dernier" in said and _day(browser, LAST_YEAR[0]) in said, said
    assert sorted(asked) == [LAST_YEAR, NOW]
    assert _listed(browser) == {YEAR_STREET}
    assert "compare=year" in page.url
    assert "l'an dernier" in hint.inner_text() and "hasard" in hint.inner_text()
    browser.shot("ranking-compare-last-year-fr")

    # The link reopens the same view.
    asked.clear()
    page.goto(page.url)
    page.wait_for_selector("body[data-ready=true]")
    assert choice.locator("option:checked").inner_text() == "Même période l'an dernier"
    assert sorted(asked) == [LAST_YEAR, NOW]
    assert _listed(browser) == {YEAR_STREET}
    assert _day(browser, LAST_YEAR[1]) in against.inner_text()

    # And in English.
    page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_label("Compare with").locator("option:checked").inner_text() == "Same period last year"
    said = against.inner_text()
    assert "same period last year" in said and _day(browser, LAST_YEAR[1]) in said, said
    assert "last year" in hint.inner_text() and "chance" in hint.inner_text()
    assert _listed(browser) == {YEAR_STREET}


@pytest.mark.parametrize(("since", "until", "before"), [
    ("2024-02-29", "2024-02-29", ("2023-02-28", "2023-02-28")),  # a leap day alone
    ("2023-03-01", "2024-02-29", ("2022-03-01", "2023-02-28")),  # twelve months ending on a leap day
    ("2026-03-10", "2026-03-16", ("2025-03-10", "2025-03-16")),  # any dates: the same ones a year before
    ("2025-01-01", "2025-12-31", ("2024-01-01", "2024-12-31")),  # a year after a leap year
])
def test_the_same_period_last_year_is_the_same_dates(browser: Browser, since: str, until: str,
                                                     before: tuple[str, str]) -> None:
    asked: list[tuple[str, str]] = []
    browser.page.route("**/api/streets?*", _answer(asked))
    browser.login(path=f"/classement?period=custom&since={since}&until={until}&compare=year")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert sorted(asked) == sorted([before, (since, until)])
    said = browser.page.locator("#improved-against").inner_text()
    assert _day(browser, before[0]) in said and _day(browser, before[1]) in said, said
