"""The ranking shows its streets a page at a time, « Voir plus » adding the next ones.

Three years of a métropole put every street of the period in the table at once: 1,421 rows,
11,600 DOM nodes, a 53,000-pixel page (docs/performance.md). The first ``PAGE`` rows of the
chosen order are shown with how many there are; the CSV keeps them all. The API is answered by
the test (``page.route``): 120 streets, more than the seeded city has.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow

PAGE, STREETS = 50, 120
PERIOD = "period=custom&since=2024-02-01&until=2024-02-29"


def _streets() -> list[dict[str, Any]]:
    # Rates all different (worst first: street 990000 at 60 %), 200 lifts each.
    return [{"street_id": 990000 + n, "name": f"Rue numéro {n}", "commune": "Rennes", "lifts": 200,
             "contaminated": STREETS - n, "rate": (STREETS - n) / 200, "ci_low": 0.0, "ci_high": 1.0,
             "top_errors": []} for n in range(STREETS)]


def _answer(route: Route) -> None:
    route.fulfill(status=200, content_type="application/json", body=json.dumps({"streets": _streets()}))


def test_the_worst_streets_come_a_page_at_a_time(browser: Browser) -> None:
    browser.page.route("**/api/streets?*", _answer)
    browser.login(path=f"/classement?{PERIOD}")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    rows = page.locator("#worst tbody tr")
    more = page.locator("section[aria-labelledby=worst-title]").get_by_role("button", name="Voir plus")
    shown = page.locator("#worst-shown")
    expect(rows).to_have_count(PAGE)
    expect(shown).to_have_text(f"{PAGE} rues affichées sur {STREETS}")
    assert rows.first.locator("th").inner_text() == "Rue numéro 0"  # the worst first, as before
    more.click()
    expect(rows).to_have_count(2 * PAGE)
    expect(shown).to_have_text(f"{2 * PAGE} rues affichées sur {STREETS}")
    # Sorting keeps what the reader asked to see, in the new order.
    page.locator("#worst thead th[data-key=rate] button").click()
    expect(rows).to_have_count(2 * PAGE)
    assert rows.first.locator("th").inner_text() == f"Rue numéro {STREETS - 1}"
    more.click()
    expect(rows).to_have_count(STREETS)
    expect(more).to_be_hidden()
    expect(shown).to_be_hidden()
    browser.shot("ranking-pages")
