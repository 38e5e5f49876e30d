"""What the ranking, the legend and the data-quality page call their figures, in each language.

Found by using the dashboard (2026-12): with an error type chosen the ranking lists streets by the
share of their lifts with that error, under a column still headed « Taux » (read as the
contamination rate); the English pages wrote "95 % CI" and "< 5 %" in French typography; the
data-quality page's uncertain streets opened on the default 3 months while it counted its
uncertain lifts since the first day whose lifts are all kept.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from server.web.dashboard import messages
from tests.dashboard.conftest import Browser
from tests.dashboard.test_pages import _store_ambiguous_lift

pytestmark = pytest.mark.slow

PERCENT_AFTER_SPACE = re.compile(r"\d[ \u00a0\u202f]%")


def _english(browser: Browser) -> None:
    browser.page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])


def _csv_head(browser: Browser) -> list[str]:
    with browser.page.expect_download() as download:
        browser.page.locator("[data-export=worst]").click()
    return download.value.path().read_text(encoding="utf-8-sig").splitlines()[0].split(";")


def test_the_ranking_heads_an_error_share_with_its_error_type(browser: Browser) -> None:
    browser.login(path="/classement?category=sac_ferme")
    browser.page.wait_for_selector("body[data-ready=true]")
    head = browser.page.locator("#worst th[data-key=rate]")
    assert head.inner_text() == "Part «\u00a0Sac fermé\u00a0»"
    assert head.locator("button").get_attribute("aria-label") == "Trier par Part «\u00a0Sac fermé\u00a0»"
    assert head.get_attribute("aria-sort") == "descending"
    head.locator("button").click()
    assert head.get_attribute("aria-sort") == "ascending"
    assert "rate" in _csv_head(browser)  # the CSV's column names stay machine-stable
    browser.shot("ranking-share-fr")
    # Back to every error: the contamination rate, under its own heading again.
    browser.page.get_by_label("Type d'erreur").select_option("")
    expect(head).to_have_text("Taux")  # the table is drawn again once both periods are in
    assert head.get_attribute("aria-sort") == "ascending"  # the reader's sort is kept


def test_the_english_ranking_heads_the_share_and_writes_percentages_english_style(browser: Browser) -> None:
    browser.login(path="/classement?category=sac_ferme")
    _english(browser)
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#worst th[data-key=rate]").inner_text() == "Share “Closed bag”"
    assert browser.page.locator("#worst th[data-key=ci]").inner_text() == "95% CI"
    assert browser.page.locator("#improved th[data-key=change_ci]").inner_text() == "Change 95% CI"
    text = browser.page.locator("main").inner_text()
    assert not PERCENT_AFTER_SPACE.findall(text), PERCENT_AFTER_SPACE.findall(text)
    browser.shot("ranking-share-en")


def test_the_map_legend_writes_percentages_in_the_pages_language(browser: Browser) -> None:
    browser.login(path="/carte")
    browser.page.wait_for_selector("body[data-map-state=ready]")
    french = browser.page.locator("#legend").inner_text().replace("\u202f", " ")
    assert "< 5 %" in french and "5 – 10 %" in french and "≥ 30 %" in french, french
    _english(browser)
    browser.page.reload()
    browser.page.wait_for_selector("body[data-map-state=ready]")
    english = browser.page.locator("#legend").inner_text()
    assert "< 5%" in english and "5–10%" in english and "≥ 30%" in english, english
    assert not PERCENT_AFTER_SPACE.findall(english)
    browser.shot("map-legend-en")


def test_an_english_street_page_writes_its_interval_english_style(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}?period=90")
    _english(browser)
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    ci = browser.page.locator("#kpi-ci").inner_text()
    assert ci.startswith("95% CI: ") and not PERCENT_AFTER_SPACE.findall(ci), ci


def test_english_messages_write_no_french_percent() -> None:
    english = messages("en")
    assert [k for k, v in english.items() if PERCENT_AFTER_SPACE.search(v)] == []
    assert messages("fr")["ranking.ci"] == "IC 95 %"  # French keeps its space


def test_an_uncertain_street_opens_on_the_period_the_quality_page_counted(browser: Browser) -> None:
    server = browser.server
    _store_ambiguous_lift(server)
    quality = server.api("/api/data-quality")
    browser.login(path="/qualite")
    browser.page.wait_for_selector("body[data-ready=true]")
    links = browser.page.locator("#ambiguous-streets tbody a")
    assert links.count() == len(quality["ambiguous_by_street"]) >= 1
    since = quality["ambiguous_since"] or quality["since"]
    href = httpx.URL(links.first.get_attribute("href"))
    assert href.params.get("period") == "custom" and href.params.get("since") == since, href
    asked: list[httpx.URL] = []
    browser.page.on("request", lambda r: "/api/streets/" in r.url and asked.append(httpx.URL(r.url)))
    links.first.click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert asked and asked[0].params.get("since") == since
    assert browser.page.locator("#street-status").inner_text() == ""
    # The street page counts every lift of the street in that period: at least its uncertain ones.
    street = quality["ambiguous_by_street"][0]
    shown = int(re.sub(r"\D", "", browser.page.locator("#kpi-lifts").inner_text()))
    assert shown >= street["lifts"]
    assert shown == server.api(f"/api/streets/{street['street_id']}", **dict(asked[0].params))["lifts"]
    browser.shot("quality-street-link")


def test_the_quality_chart_bands_write_percentages_in_the_pages_language(browser: Browser) -> None:
    browser.login(path="/qualite")
    _english(browser)
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    bands = browser.page.locator("#confidence-table tbody th").all_text_contents()  # in a closed <details>
    assert bands and all(b.endswith("%") and not PERCENT_AFTER_SPACE.search(b) for b in bands), bands
    browser.shot("quality-en")
