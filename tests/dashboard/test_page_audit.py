"""What a browser audit of the dashboard found: stale filter answers, menus and buttons a role cannot use,
a missing street, the language switch dropping the filters, long names on a phone; then chosen dates
out of order shown as the API's English 422, a long truck id pushing the fleet's columns out of view,
a lowercase column header.

Each test failed before its fix (the map drew an older, slower answer; a viewer was offered the
annotation tools and a campaign button that answered 403; ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, expect
from sqlalchemy import delete, update

from server.ingest.models import Truck
from server.streets.models import Street, StreetNetwork
from tests.dashboard.conftest import SILENT_TRUCK, Browser, LiveServer
from tests.dashboard.seed import PASSWORD
from tests.dashboard.test_annotation import publish_photos

pytestmark = pytest.mark.slow

WORST, GREY = "#6d0a23", "#737373"  # app.js CLASSES: >= 30 %, too few lifts
# Answers to requests with this query part come back 1.5 s late: overtaken by the next filter change's answer.
SLOW = """(part) => {
  const fetchNow = window.fetch;
  window.fetch = async (url, init) => {
    const response = await fetchNow(url, init);
    if (String(url).includes(part)) {
      await new Promise((done) => setTimeout(done, 1500));
      window.slowAnswers = (window.slowAnswers || 0) + 1;
    }
    return response;
  };
}"""


@pytest.mark.parametrize("path", ["/carte", "/classement"])
def test_a_slow_answer_to_an_older_filter_never_replaces_the_newest(browser: Browser, path: str) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path=path)
    page = browser.page
    ready = "body[data-map-state=ready]" if path == "/carte" else "body[data-ready=true]"
    page.wait_for_selector(ready)
    page.evaluate(SLOW, "stream=glass")
    stream = page.get_by_label("Flux")
    stream.select_option("glass")  # no lift of glass in the seeded city: an empty map, an empty table
    stream.select_option("recyclables")  # changed at once: this is the selection the page must show
    page.wait_for_function("window.slowAnswers >= 1")
    page.wait_for_timeout(300)  # what the page does with the late answer
    assert "stream=recyclables" in page.url
    if path == "/carte":
        assert page.evaluate("id => Trivue.mapView.styleOf(id).color", dirty) == WORST
        assert page.locator("#worst-list li").count() >= 4
    else:
        assert page.locator(f'#worst tbody a[href^="/rues/{dirty}"]').count() == 1
    browser.shot(f"audit-stale-{path.strip('/')}")


def test_a_selection_without_a_judged_street_says_so_in_the_side_list(browser: Browser) -> None:
    browser.login(path="/carte?stream=glass")  # no glass collected in the seeded city
    browser.page.wait_for_selector("body[data-map-state=ready]")
    assert browser.page.locator("#worst-list").inner_text() == "Aucune donnée pour cette sélection."


@pytest.mark.parametrize("page", ["map", "street"])
def test_a_link_with_a_period_the_menu_does_not_offer_opens_the_default_period(browser: Browser, page: str) -> None:
    # A truncated or hand-edited link: the page used to stop on "Invalid time value", stuck loading.
    dirty = browser.server.city.streets["dirty"][0]
    path = "/carte?period=abc" if page == "map" else f"/rues/{dirty}?period=abc"
    browser.login(path=path)
    if page == "map":
        browser.page.wait_for_selector("body[data-map-state=ready]")
        assert browser.page.get_by_label("Période").input_value() == "90"
        assert browser.page.evaluate("id => Trivue.mapView.styleOf(id).color", dirty) == WORST
    else:
        browser.page.wait_for_selector("body[data-ready=true]")
        assert "3 derniers mois" in browser.page.locator("#street-commune").inner_text()


def menu(browser: Browser) -> list[str]:
    return browser.page.locator("nav .nav a").all_inner_texts()


def test_a_viewer_is_not_offered_annotation_or_campaigns_it_cannot_use(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login("lecteur", f"/rues/{dirty}")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#campaign").count() == 0  # /rappels answers "reserved for managers"
    assert "Annotation" not in menu(browser) and "Rappels" not in menu(browser)
    browser.goto("/annotation")  # by its address: the notice, and no tool that would answer 403
    assert browser.page.get_by_text("Cette page demande le rôle annotateur").is_visible()
    assert browser.page.locator("#ann-done, #ann-stage").count() == 0
    browser.goto("/rappels")
    assert "Rappels" not in menu(browser)
    browser.shot("audit-viewer-annotation")


def test_a_manager_keeps_the_annotation_menu_and_the_campaign_button(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login("gestionnaire", f"/rues/{dirty}")
    assert browser.page.locator("#campaign").get_attribute("href") == f"/rappels?street_id={dirty}"
    assert {"Annotation", "Rappels"} <= set(menu(browser))


def test_an_unknown_street_is_a_french_page_not_the_apis_json(live_server: LiveServer) -> None:
    # A bookmark from before a street re-import (new ids) must not land on {"detail": "no street 1"}.
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        client.post("/api/login", json={"name": "gestionnaire", "password": PASSWORD}).raise_for_status()
        response = client.get("/rues/987654321")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Rue introuvable." in response.text and 'href="/carte"' in response.text


def test_switching_language_keeps_the_filters_chosen_on_the_page(browser: Browser) -> None:
    browser.login()
    browser.page.wait_for_selector("body[data-map-state=ready]")
    browser.page.get_by_label("Période").select_option("30")  # changes the URL without a reload
    browser.page.wait_for_url("**period=30*")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("html[lang=en]")
    assert "period=30" in browser.page.url
    assert browser.page.get_by_label("Period").input_value() == "30"
    browser.page.get_by_role("link", name="Français").click()  # the cookie is shared: back to French
    browser.page.wait_for_selector("html[lang=fr]")


LONG_NAME = "Rue-" + "x" * 70 + '<img src=x onerror="window.xss=1">'


def rename(live: LiveServer, street_id: int, name: str) -> None:
    # A new network revision, as an import makes: the server reloads the streets it keeps in memory.
    with live.sessions() as db:
        db.execute(update(Street).where(Street.id == street_id).values(name=name))
        db.execute(update(StreetNetwork).values(revision=StreetNetwork.revision + 1))
        db.commit()


@pytest.fixture
def long_named_street(live_server: LiveServer) -> Iterator[int]:
    """A judged street renamed with a long word and markup for one test, then given its name back."""
    street_id = live_server.city.streets["medium"][0]
    with live_server.sessions() as db:
        name = db.get(Street, street_id).name
    rename(live_server, street_id, LONG_NAME)
    try:
        yield street_id
    finally:
        rename(live_server, street_id, name)


@pytest.mark.parametrize("where", ["map", "street"])
def test_a_long_unbreakable_name_does_not_push_a_phone_page_sideways(browser: Browser, long_named_street: int,
                                                                      where: str) -> None:
    browser.page.set_viewport_size({"width": 390, "height": 844})
    path = "/carte" if where == "map" else f"/rues/{long_named_street}"
    browser.login(path=path)
    browser.page.wait_for_selector("body[data-map-state=ready]" if where == "map" else "body[data-ready=true]")
    shown = "#worst-list" if where == "map" else "#street-name"
    assert LONG_NAME in browser.page.locator(shown).inner_text()  # the markup is text
    assert browser.page.evaluate("window.xss") is None
    assert browser.page.evaluate("document.documentElement.scrollWidth") <= 390
    browser.shot(f"audit-phone-long-name-{where}")


def api_calls(browser: Browser) -> list[str]:
    """Statistics requests the page sends from now on (a list that grows)."""
    calls: list[str] = []
    browser.page.on("request", lambda r: "/api/streets" in r.url and calls.append(r.url))
    return calls


@pytest.mark.parametrize(("path", "lang"), [("/carte", "fr"), ("/classement", "fr"), ("/carte", "en")])
def test_chosen_dates_out_of_order_are_said_in_the_readers_language_and_not_sent(browser: Browser, path: str,
                                                                                 lang: str) -> None:
    # The API's 422 "until ... is before since ..." used to appear in English inside "Erreur (…)".
    browser.login(path=path)
    page = browser.page
    if lang == "en":
        page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
        browser.goto(path)
    ready = "body[data-map-state=ready]" if path == "/carte" else "body[data-ready=true]"
    page.wait_for_selector(ready)
    words = {"fr": ("Période", "Du", "Au", "La date « Du » doit venir avant la date « Au »"),
             "en": ("Period", "From", "To", "The “From” date must come before the “To” date")}[lang]
    page.get_by_label(words[0]).select_option("custom")
    # Choosing "custom" loads the period shown, in order: its statistics request went out from the page
    # after a fixed 300 ms on a loaded machine, was counted below and read as dates out of order sent.
    # Waited for until that load is drawn (the map's state, the ranking's status line emptied).
    if path == "/carte":
        page.wait_for_selector("body[data-map-state=ready]")
    else:
        expect(page.locator("#ranking-status")).to_have_text("")
    calls = api_calls(browser)
    since = page.get_by_label(words[1], exact=True).input_value()
    assert since > "2020-01-01"  # kept from the period shown (it used to be emptied)
    page.get_by_label(words[2], exact=True).fill("2020-01-01")  # before "du": out of order
    message = page.locator("#f-dates-error")
    message.wait_for()
    assert words[3] in message.inner_text()
    assert page.get_by_label(words[1], exact=True).get_attribute("aria-invalid") == "true"
    page.wait_for_timeout(500)
    assert calls == [], "dates out of order were sent to the API"
    status = "#map-summary" if path == "/carte" else "#ranking-status"
    assert "Erreur" not in page.locator(status).inner_text() and "Error" not in page.locator(status).inner_text()
    assert "until=2020-01-01" not in page.url  # the link keeps the selection shown
    browser.shot(f"audit-dates-order-{path.strip('/')}-{lang}")
    # corrected: the message goes, the page loads. The link changes just before the request goes out,
    # and Playwright may report the new address before that request: waited for, not read at once.
    with page.expect_request(lambda r: "/api/streets" in r.url and f"until={since}" in r.url):
        page.get_by_label(words[2], exact=True).fill(since)
    page.wait_for_url(f"**until={since}*")
    assert message.inner_text() == "" and not message.is_visible()
    assert page.get_by_label(words[1], exact=True).get_attribute("aria-invalid") is None
    assert calls, "the corrected dates were not loaded"


@pytest.mark.parametrize("where", ["map", "street"])
def test_a_link_with_dates_out_of_order_says_so_in_french(browser: Browser, where: str) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    query = "?period=custom&since=2026-03-10&until=2026-03-01"
    path = f"/carte{query}" if where == "map" else f"/rues/{dirty}{query}"
    browser.login(path="/classement")
    calls = api_calls(browser)
    browser.goto(path)
    if where == "map":
        assert "La date « Du » doit venir avant" in browser.page.locator("#f-dates-error").inner_text()
        assert browser.page.locator("#map-summary").inner_text() == ""
        browser.page.wait_for_function("id => Trivue.mapView.styleOf(id) !== null", arg=dirty)  # drawn grey
        assert browser.page.evaluate("id => Trivue.mapView.styleOf(id).color", dirty) == GREY
    else:
        browser.page.wait_for_selector("body[data-ready=error]")
        status = browser.page.locator("#street-status")
        assert "La date « Du » doit venir avant" in status.inner_text() and "Erreur" not in status.inner_text()
    browser.page.wait_for_timeout(500)
    assert [c for c in calls if "since=" in c] == []
    browser.shot(f"audit-dates-order-link-{where}")


def test_a_slow_answer_to_an_older_annotation_filter_never_replaces_the_newest(browser: Browser,
                                                                               shared_dir: Path) -> None:
    truck = f"benne-audit-{uuid.uuid4().hex[:6]}"
    photos = sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))[12:14]
    publish_photos(browser.server, truck, photos)  # the first "contaminated", the second "uncertain"
    browser.login(path=f"/annotation?truck_id={truck}")
    page = browser.page
    page.wait_for_selector("#ann-stage canvas")
    page.evaluate(SLOW, "reason=uncertain")
    page.select_option("#a-reason", "uncertain")
    page.select_option("#a-reason", "contaminated")  # changed at once: this is the selection to show
    page.wait_for_function("window.slowAnswers >= 1")
    page.wait_for_timeout(500)  # what the page does with the late answer (and the photo it would fetch)
    assert "reason=contaminated" in page.url
    assert "Erreur de tri" in page.locator("#ann-meta").inner_text()
    # the newest selection's queue: its answer may come after the late one on a loaded machine
    expect(page.locator("#ann-progress")).to_have_text("0 photo annotée sur 1")
    browser.shot("audit-stale-annotation")


LONG_TRUCK = "benne-" + "0123456789" * 5 + "abcd"  # 60 characters, no space: a serial number as an id


@pytest.fixture
def long_named_truck(live_server: LiveServer) -> Iterator[str]:
    now = datetime.now(UTC)
    with live_server.sessions() as db:
        db.add(Truck(truck_id=LONG_TRUCK, status="online", status_at=now, last_seen_at=now,
                     stats={"truck_id": LONG_TRUCK, "sent_at": now.isoformat(), "uptime_s": 600, "outbox_depth": 0,
                            "inference_ms": 120.0, "fps": 7.0, "gps_fix_age_s": 1.0, "lifts_total": 12,
                            "model": {"name": "trivue-waste", "version": "2026.11.1"}, "stream": "recyclables"},
                     stats_at=now))
        db.commit()
    try:
        yield LONG_TRUCK
    finally:
        with live_server.sessions() as db:
            db.execute(delete(Truck).where(Truck.truck_id == LONG_TRUCK))
            db.commit()


def lines(cell: Locator) -> int:
    """Lines of text in a table cell (one rectangle a line for the range over its text)."""
    return cell.evaluate("c => { const r = document.createRange(); r.selectNodeContents(c); "
                         "return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; }")


@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_truck_id_wraps_and_keeps_the_fleet_columns_in_view(browser: Browser, long_named_truck: str,
                                                                   width: int) -> None:
    browser.page.set_viewport_size({"width": width, "height": 860})
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    cell = browser.page.locator(f'tr[data-truck="{long_named_truck}"] th')
    assert cell.inner_text() == long_named_truck
    box = cell.bounding_box()
    assert lines(cell) > 1, "the truck id stays on one line"  # it was 628 px wide
    if width == 1280:  # the whole table in view: no sideways scrolling to reach the last columns
        assert browser.page.evaluate("(() => { const s = document.querySelector('.table-scroll'); "
                                     "return s.scrollWidth - s.clientWidth; })()") <= 0
    else:  # ten columns scroll in their box on a phone, but the truck's takes no more than a usual id's
        assert box["width"] <= 160
    assert lines(browser.page.locator(f"tr[data-truck={SILENT_TRUCK}] th")) == 1, "a usual id broken at its hyphen"
    assert browser.page.evaluate("document.documentElement.scrollWidth") <= width
    browser.shot(f"audit-fleet-long-truck-{width}")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_data_quality_column_header_starts_with_a_capital(browser: Browser, lang: str) -> None:
    browser.login(path="/qualite")
    if lang == "en":
        browser.page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
        browser.goto("/qualite")
    browser.page.wait_for_selector("body[data-ready=true]")
    # textContent: the chart's table sits in a closed <details>, where innerText is empty.
    headers = browser.page.locator("table.data thead th").evaluate_all("els => els.map((e) => e.textContent.trim())")
    assert headers and all(h[:1].isupper() for h in headers), headers
    browser.shot(f"audit-quality-headers-{lang}")


def test_a_streets_photos_follow_the_period_and_stream_of_the_page(browser: Browser) -> None:
    """The photos under "Dernières levées non conformes" were the street's latest of all time,
    whatever period and stream the figures above them were for."""
    dirty = browser.server.city.streets["dirty"][0]
    browser.login(path="/classement")
    asked: list[str] = []
    browser.page.on("request", lambda r: "/api/lifts" in r.url and asked.append(r.url))
    browser.goto(f"/rues/{dirty}?period=custom&since=2026-01-05&until=2026-02-20&stream=recyclables")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert len(asked) == 1
    query = httpx.URL(asked[0]).params
    assert (query.get("day_since"), query.get("day_until"), query.get("stream")) == (
        "2026-01-05", "2026-02-20", "recyclables")
    # the seeded lifts are all within the last weeks: none in January-February
    assert browser.page.locator("#recent img").count() == 0
    assert browser.page.locator("#recent li").inner_text() == browser.page.evaluate("Trivue.t('common.none')")
    assert browser.page.locator("#kpi-lifts").inner_text() == "0"
    assert browser.page.locator("#kpi-ci").inner_text() == ""  # not "IC 95 % : 0 % – 100 %"
    browser.shot("audit-street-period-without-lifts")


def test_annotation_dates_out_of_order_are_said_in_french_and_not_sent(browser: Browser) -> None:
    # The queue's 422 "until ... is before since ..." appeared in English in the status line.
    browser.login(path="/annotation")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    asked: list[str] = []
    page.on("request", lambda r: "/api/labels/queue" in r.url and asked.append(r.url))
    page.get_by_label("Du", exact=True).fill("2026-03-10")
    page.wait_for_timeout(300)
    page.get_by_label("Au", exact=True).fill("2026-03-01")
    message = page.locator("#a-dates-error")
    message.wait_for()
    assert "La date « Du » doit venir avant la date « Au »" in message.inner_text()
    assert page.get_by_label("Au", exact=True).get_attribute("aria-invalid") == "true"
    page.wait_for_timeout(500)
    assert not [url for url in asked if "until=2026-03-01" in url], "dates out of order were sent"
    assert "until=2026-03-01" not in page.url
    assert "Erreur" not in page.locator("#ann-status").inner_text()
    browser.shot("audit-annotation-dates-order")
    # The link changes just before the queue is asked for: the request waited for, not read at once.
    with page.expect_request(lambda r: "/api/labels/queue" in r.url and "until=2026-03-20" in r.url):
        page.get_by_label("Au", exact=True).fill("2026-03-20")
    page.wait_for_url("**until=2026-03-20*")
    assert message.inner_text() == "" and not message.is_visible()
    assert [url for url in asked if "until=2026-03-20" in url]


def test_an_annotation_link_with_dates_out_of_order_waits_for_a_correction(browser: Browser) -> None:
    browser.login(path="/classement")
    asked: list[str] = []
    browser.page.on("request", lambda r: "/api/labels/queue" in r.url and asked.append(r.url))
    browser.goto("/annotation?since=2026-03-10&until=2026-03-01")
    browser.page.wait_for_selector("body[data-ready=error]")
    assert "doit venir avant" in browser.page.locator("#a-dates-error").inner_text()
    assert asked == []
