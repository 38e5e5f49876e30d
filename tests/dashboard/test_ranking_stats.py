"""The ranking's "most improved" streets: a change of rate shown with its 95 % interval, and only
drops that chance cannot explain.

Ranking every drop by its size put streets with a handful of lifts at the top (their rate swings
by tens of points between two periods while nothing changes) and showed no uncertainty. The
expected interval is computed here independently: scipy's Wilson interval of each period,
combined by Newcombe's hybrid score method (Newcombe 1998, method 10).
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from scipy.stats import binomtest

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow


def newcombe(after: tuple[int, int], before: tuple[int, int]) -> tuple[float, float, float]:
    """(change, low, high) of after rate minus before rate; each argument is (contaminated, lifts)."""
    (x1, n1), (x0, n0) = after, before
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = binomtest(x1, n1).proportion_ci(method="wilson")
    l0, u0 = binomtest(x0, n0).proportion_ci(method="wilson")
    change = p1 - p0
    return change, change - math.hypot(p1 - l1, u0 - p0), change + math.hypot(u1 - p1, p0 - l0)


def _street(x: int, n: int) -> dict[str, float]:
    low, high = binomtest(x, n).proportion_ci(method="wilson")
    return {"rate": x / n, "ci_low": low, "ci_high": high}


CASES = [((2, 50), (30, 50)), ((0, 5), (3, 5)), ((0, 1), (1, 1)), ((5, 5), (0, 5)), ((12, 200), (20, 180)),
         ((0, 40), (0, 40))]


@pytest.mark.parametrize(("after", "before"), CASES)
def test_the_change_interval_is_newcombes(browser: Browser, after: tuple[int, int],
                                          before: tuple[int, int]) -> None:
    browser.login(path="/classement")
    browser.page.wait_for_selector("body[data-ready=true]")
    got = browser.page.evaluate("([a, b]) => Trivue.changeInterval(a, b)", [_street(*after), _street(*before)])
    change, low, high = newcombe(after, before)
    assert got["change"] == pytest.approx(change, abs=1e-9)
    assert got["change_low"] == pytest.approx(low, abs=1e-6)
    assert got["change_high"] == pytest.approx(high, abs=1e-6)
    assert low <= change <= high


def test_only_drops_larger_than_chance_are_listed_with_their_interval(browser: Browser) -> None:
    server = browser.server
    asked: list[httpx.URL] = []
    browser.page.on("request", lambda r: "/api/streets?" in r.url and asked.append(httpx.URL(r.url)))
    browser.login(path="/classement?period=30")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert len(asked) == 2
    periods: list[dict[int, dict[str, Any]]] = []
    for url in sorted(asked, key=lambda u: u.params["since"], reverse=True):  # this period, then the one before
        streets = server.api("/api/streets", **dict(url.params))["streets"]
        periods.append({s["street_id"]: s for s in streets})
    now, then = periods
    expected = {}
    for sid, street in now.items():
        if sid in then:
            change, low, high = newcombe((street["contaminated"], street["lifts"]),
                                         (then[sid]["contaminated"], then[sid]["lifts"]))
            if high < 0:
                expected[sid] = (change, low, high)
    # Some street dropped by chance only (else this test shows nothing): it must not be listed.
    noise = [sid for sid, s in now.items() if sid in then and s["rate"] < then[sid]["rate"] and sid not in expected]
    assert noise, "the seeded city has no drop within chance"
    improving = server.city.streets["improving"][0]
    assert improving in expected
    rows = browser.page.locator("#improved tbody tr")
    listed = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        sid = int(row.locator("th a").get_attribute("href").split("/")[2].split("?")[0])
        listed[sid] = row.locator("td").nth(4).inner_text()
    assert set(listed) == set(expected)
    change, low, high = expected[improving]
    points = browser.page.evaluate("([l, h]) => [Trivue.fmt.points(l), Trivue.fmt.points(h)]", [low, high])
    assert listed[improving] == f"{points[0]} – {points[1]}"
    assert "hasard" in browser.page.locator("section[aria-labelledby=improved-title] p.muted").inner_text()
