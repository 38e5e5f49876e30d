"""Links between the map, the ranking and a street's page: the figures a manager follows must match.

Found by a first-use review as a French waste manager (2026-12-06): with an error type chosen, the map
and the ranking list a street by the share of its lifts with that error, and the street's page opened
from there showed only its contamination rate, a different number with nothing to say why; a stream
code the dashboard does not know in a link showed the API's raw English 422 on a French page; the
ranking's CSV (semicolons, for a French spreadsheet) wrote decimals with a point, which a French
spreadsheet reads as text (or a date), not as numbers; then the English page's CSV took those French
semicolons and commas, which an English spreadsheet reads as text.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow


def test_a_street_opened_with_an_error_type_shows_the_share_the_map_listed(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}?period=90&category=sac_ferme")
    browser.page.wait_for_selector("body[data-ready=true]")
    share = next(
        r for r in browser.server.api("/api/error-rates", category="sac_ferme")["items"] if r["street_id"] == dirty
    )
    shown = browser.page.locator("#kpi-category").inner_text()
    assert "Sac fermé" in shown
    assert browser.page.evaluate("r => Trivue.fmt.pct(r)", share["rate"]) in shown
    assert "Sac fermé" in browser.page.locator("#street-commune").inner_text()


def test_a_street_opened_without_an_error_type_says_no_share(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}?period=90")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#kpi-category").inner_text() == ""


def test_the_map_legend_names_the_error_type_it_colours_by(browser: Browser) -> None:
    browser.login(path="/carte?category=sac_ferme")
    browser.page.wait_for_selector("body[data-map-state=ready]")
    # No-break spaces inside « », as French typography (and « Part » in the ranking) has them: the
    # legend cannot break a line after «.
    assert "«\u00a0Sac fermé\u00a0»" in browser.page.locator("#legend-what").inner_text()
    browser.page.get_by_label("Type d'erreur").select_option("")
    browser.page.wait_for_selector("body[data-map-state=ready]")
    assert browser.page.locator("#legend-what").inner_text() == "Taux de non-conformité"


def test_an_unknown_stream_in_a_street_link_falls_back_to_every_stream(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}?period=90&stream=emballages")  # a hand-edited link
    browser.page.wait_for_selector("body[data-ready]")
    assert browser.page.locator("body").get_attribute("data-ready") == "true"
    assert browser.page.locator("#street-status").inner_text() == ""
    lifts = browser.server.api(f"/api/streets/{dirty}")["lifts"]
    assert browser.page.locator("#kpi-lifts").inner_text() == browser.page.evaluate("n => Trivue.fmt.num(n)", lifts)


def _ranking_csv(browser: Browser, separator: str) -> list[dict[str, str]]:
    browser.page.wait_for_selector("body[data-ready=true]")
    with browser.page.expect_download() as download:
        browser.page.locator("[data-export=worst]").click()
    raw = download.value.path().read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: a spreadsheet reads UTF-8 (« é ») in both languages
    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=separator)
    head, *lines = list(reader)
    assert "ci_low" in head, head  # split on the expected separator
    rows = [dict(zip(head, line, strict=True)) for line in lines]
    assert rows
    return rows


def test_the_ranking_csv_writes_decimals_as_a_french_spreadsheet_reads_them(browser: Browser) -> None:
    browser.login(path="/classement")
    for row in _ranking_csv(browser, ";"):
        for key in ("rate", "ci_low", "ci_high"):
            assert re.fullmatch(r"[01](,\d+)?", row[key]), (key, row[key])
        assert re.fullmatch(r"\d+", row["lifts"])


def test_the_english_ranking_csv_writes_decimals_as_an_english_spreadsheet_reads_them(browser: Browser) -> None:
    # An English spreadsheet splits on commas and reads "0,425" as text: the English page's CSV is
    # comma-separated with a decimal point.
    browser.login(path="/classement")
    browser.page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
    browser.page.reload()
    for row in _ranking_csv(browser, ","):
        for key in ("rate", "ci_low", "ci_high"):
            assert re.fullmatch(r"[01](\.\d+)?", row[key]), (key, row[key])
        assert re.fullmatch(r"\d+", row["lifts"])
