"""What a waste department's director saw preparing the yearly review for elected officials (2026-12).

- A street's trend drew the rate of a day or week of one or two lifts: a spike to 100 % (or a dip
  to 0 %) on a week when the truck lifted a single bin, as loud as the weeks of hundreds. The chart
  now leaves out the rate of a day or week under *Levées minimum pour juger* (as the map greys such
  a street), says so under the chart, and the table keeps every figure.
- The ranking's « most improved » compared a month, a quarter or a year with "the previous period
  of the same length" in days: March with 29 January - 28 February, the 2nd quarter with 31 December
  - 31 March, a year after a leap year with a year missing its 1st of January. A selection of whole
  calendar months is now compared with as many whole months before it, and the page says which days
  it compared with.
"""

from __future__ import annotations

import httpx
import pytest

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow


def test_the_trend_draws_no_rate_for_a_day_of_too_few_lifts(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}?period=30")  # daily: the seeded street has one or two lifts a day
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    chart = page.evaluate("(() => { const c = Chart.getChart('trend-chart'); return {rate: c.data.datasets[0].data, "
                          "lifts: c.data.datasets[1].data}; })()")
    assert any(0 < n < 5 for n in chart["lifts"])
    assert [r for r, n in zip(chart["rate"], chart["lifts"], strict=True) if n < 5 and r is not None] == []
    note = page.locator("#trend-note").inner_text()
    assert "5 levées" in note and "jour" in note
    browser.shot("director-trend-few-lifts")


def test_most_improved_compares_whole_months_with_as_many_months_before(browser: Browser) -> None:
    asked: list[httpx.URL] = []
    browser.page.on("request", lambda r: "/api/streets?" in r.url and asked.append(httpx.URL(r.url)))
    cases = {("2026-03-01", "2026-03-31"): ("2026-02-01", "2026-02-28"),  # a month: the month before
             ("2026-04-01", "2026-06-30"): ("2026-01-01", "2026-03-31"),  # a quarter: the quarter before
             ("2025-01-01", "2025-12-31"): ("2024-01-01", "2024-12-31"),  # a year after a leap year
             ("2026-03-10", "2026-03-16"): ("2026-03-03", "2026-03-09")}  # not whole months: same length
    browser.login(path="/classement")
    for (since, until), (before_since, before_until) in cases.items():
        asked.clear()
        browser.goto(f"/classement?period=custom&since={since}&until={until}")
        browser.page.wait_for_selector("body[data-ready=true]")
        periods = sorted((u.params["since"], u.params["until"]) for u in asked)
        assert periods == [(before_since, before_until), (since, until)]
        said = browser.page.locator("#improved-against").inner_text()
        day = browser.page.evaluate("(d) => Trivue.fmt.date(d)", before_since)
        assert day in said, said
