"""The dashboard in headless Chromium against the real server, a seeded city and a real MQTT broker."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from server.ingest.aggregates import insert_lifts, lift_row
from server.ingest.models import DeadLetter
from server.streets.locator import Locator
from server.streets.trajectory import AMBIGUOUS
from tests.dashboard.conftest import SILENT_TRUCK, Browser, LiveServer
from tests.dashboard.seed import make_event
from vision.rules import SortingRules
from vision.schema import TruckStats

pytestmark = pytest.mark.slow

WORST, BEST, GREY = "#6d0a23", "#2166ac", "#737373"  # app.js CLASSES: >= 30 %, < 5 %, too few lifts


def map_ready(browser: Browser) -> None:
    browser.page.wait_for_selector("body[data-map-state=ready]")


def colour(browser: Browser, street_id: int) -> str:
    return browser.page.evaluate("id => Trivue.mapView.styleOf(id).color", street_id)


def test_login_refuses_a_wrong_password_then_shows_the_map_coloured(browser: Browser) -> None:
    city = browser.server.city
    browser.goto("/carte")
    browser.page.wait_for_url("**/login?next=%2Fcarte")
    browser.page.get_by_label("Identifiant").fill("gestionnaire")
    browser.page.get_by_label("Mot de passe").fill("wrong password")
    browser.page.get_by_role("button", name="Se connecter").click()
    assert browser.page.get_by_role("alert").inner_text() == "Identifiant ou mot de passe incorrect."
    # The refused POST /api/login is logged by Chromium itself; that one is expected.
    browser.expected.append("console: Failed to load resource: the server responded with a status of 401 "
                            "(Unauthorized)")
    browser.shot("01-login-refused")

    browser.login()
    map_ready(browser)
    assert [colour(browser, s) for s in city.streets["dirty"]] == [WORST, WORST]
    assert [colour(browser, s) for s in city.streets["clean"]] == [BEST, BEST]
    assert colour(browser, city.streets["few"][0]) == GREY  # 2 lifts: too few to judge
    assert browser.page.locator("#worst-list li").count() >= 4
    assert "gestionnaire (gestionnaire)" in browser.page.locator("#whoami").inner_text()
    browser.shot("02-carte")


def test_period_filter_recolours_the_map_and_keeps_the_choice_in_the_url(browser: Browser) -> None:
    old = browser.server.city.streets["old"][0]  # lifts 45 to 80 days ago only
    browser.login()
    map_ready(browser)
    assert colour(browser, old) != GREY  # default period: 3 months, it is judged
    browser.page.get_by_label("Période").select_option("30")
    browser.page.wait_for_function(f"Trivue.mapView.styleOf({old}).color === '{GREY}'")
    map_ready(browser)
    assert "period=30" in browser.page.url
    browser.shot("03-carte-30-jours")
    browser.page.reload()
    map_ready(browser)
    assert browser.page.get_by_label("Période").input_value() == "30"
    assert colour(browser, old) == GREY


def test_clicking_a_street_opens_its_trend_breakdown_and_photos(browser: Browser) -> None:
    server = browser.server
    dirty = server.city.streets["dirty"][0]
    lat, lon = server.city.point_of[dirty]
    browser.login()
    map_ready(browser)
    browser.page.evaluate("([lat, lon]) => { Trivue.mapView.map.setView([lat, lon], 18, { animate: false }); }",
                          [lat, lon])
    point = browser.page.evaluate("([lat, lon]) => Trivue.mapView.pointOf(lat, lon)", [lat, lon])
    box = browser.page.locator("#map").bounding_box()
    browser.page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    browser.page.wait_for_url(f"**/rues/{dirty}*")
    browser.page.wait_for_selector("body[data-ready=true]")

    detail = server.api(f"/api/streets/{dirty}")
    assert browser.page.locator("#street-name").inner_text() == detail["name"]
    assert browser.page.locator("#kpi-lifts").inner_text() == str(detail["lifts"])
    shown = browser.page.evaluate("r => Trivue.fmt.pct(r)", detail["rate"])
    assert browser.page.locator("#kpi-rate").inner_text() == shown
    assert re.fullmatch(r"\d{1,2}(,\d)?\s?%", shown)  # French: "42,5 %"
    points = browser.page.evaluate("Chart.getChart('trend-chart').data.datasets[1].data.reduce((a, b) => a + b, 0)")
    assert points == detail["lifts"]
    assert browser.page.locator("#breakdown tbody tr").count() >= 2
    photo = browser.page.locator("#recent img").first
    photo.scroll_into_view_if_needed()
    browser.page.wait_for_function("() => [...document.querySelectorAll('#recent img')].some(i => i.naturalWidth > 0)")
    assert "Photo floutée" in photo.get_attribute("alt")
    campaign = browser.page.locator("#campaign")
    assert campaign.inner_text() == "Préparer une campagne de rappel" and campaign.is_visible()
    assert campaign.get_attribute("href") == f"/rappels?street_id={dirty}"
    assert browser.page.locator("nav a[href='/rappels']").inner_text() == "Rappels"
    browser.shot("04-rue")
    campaign.click()
    browser.page.wait_for_url(f"**/rappels?street_id={dirty}")
    assert browser.page.locator("nav a[aria-current=page]").inner_text() == "Rappels"


def test_a_viewer_sees_statistics_but_no_photos(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.login("lecteur", f"/rues/{dirty}")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#recent-hidden").is_visible()
    assert browser.page.locator("#recent img").count() == 0
    assert browser.page.locator("#kpi-lifts").inner_text() != "–"


def test_fleet_page_shows_heartbeats_and_flags_a_silent_truck(browser: Browser) -> None:
    server = browser.server
    stats = TruckStats(truck_id="benne-01", sent_at=datetime.now(UTC), uptime_s=3600, fps=7.5,
                       inference_ms=118.0, outbox_depth=3, model={"name": "trivue-waste", "version": "2026.11.1"},
                       stream="recyclables", gps_fix_age_s=1.5, lifts_total=421,
                       model_check={"status": "fallback", "configured": "trivue-waste-int8.onnx",
                                    "running": "trivue-waste.onnx", "disagreement": 0.31, "threshold": 0.15,
                                    "photos": 8},
                       config_refused="2026-12-05T08:00:00Z: rules.yaml: no rules for stream 'glass'")
    server.publish("benne-01/status", "online", retain=True)
    server.publish("benne-01/stats", stats.model_dump_json())
    server.wait_for(lambda: any(t["truck_id"] == "benne-01" and t["stats"]
                                for t in server.api("/api/trucks")["trucks"]), "benne-01's heartbeat")
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    row = browser.page.locator("tr[data-truck=benne-01]")
    assert "En ligne" in row.inner_text() and "118 ms" in row.inner_text() and "2026.11.1" in row.inner_text()
    assert "7,5" in row.inner_text()  # a French decimal comma, as every number of the page
    silent = browser.page.locator(f"tr[data-truck={SILENT_TRUCK}]")
    assert "Silencieux" in silent.inner_text() and "il y a 2 h" in silent.inner_text()
    assert "Silencieux" not in row.inner_text()
    fallback = row.locator(".badge.warn")  # the INT8 self-check failed: the truck runs FP32
    assert "FP32 (secours)" in fallback.inner_text() and "0,31 > 0,15" in fallback.get_attribute("title")
    refused = row.locator("[data-config=refused]")  # a configuration the truck kept its settings against
    assert "config. refusée" in refused.inner_text() and "no rules for stream 'glass'" in refused.get_attribute("title")
    assert silent.locator("[data-config=refused]").count() == 0
    browser.shot("05-flotte")


def test_a_battery_published_over_mqtt_appears_live_on_the_alerts_page(browser: Browser) -> None:
    server = browser.server
    street = server.city.streets["clean"][0]
    browser.login(path="/alertes")
    browser.page.wait_for_selector("#live.on")
    browser.page.evaluate("window.notReloaded = true")
    event = make_event("benne-02", 99_999, datetime.now(UTC), server.city.point_of[street],
                       {"battery": 1, "bottle": 1}, SortingRules.load())
    server.publish("benne-02/lift", event.to_json())
    item = browser.page.locator(f"li[data-event='{event.event_id}']")
    item.wait_for()
    assert "Pile ou batterie × 1" in item.inner_text()
    assert server.api(f"/api/streets/{street}")["name"] in item.inner_text()
    assert browser.page.evaluate("window.notReloaded") is True
    browser.shot("06-alertes")


def test_ranking_sorts_and_exports_csv(browser: Browser) -> None:
    city = browser.server.city
    browser.login(path="/classement")
    browser.page.wait_for_selector("body[data-ready=true]")
    first = browser.page.locator("#worst tbody tr").first.locator("th a").get_attribute("href")
    assert re.match(rf"/rues/({city.streets['dirty'][0]}|{city.streets['dirty'][1]})\b", first)
    browser.page.locator("#worst th[data-key=rate] button").click()  # now ascending
    assert browser.page.locator("#worst th[data-key=rate]").get_attribute("aria-sort") == "ascending"
    first = browser.page.locator("#worst tbody tr").first.locator("th a").get_attribute("href")
    assert re.match(rf"/rues/({city.streets['clean'][0]}|{city.streets['clean'][1]})\b", first)
    with browser.page.expect_download() as download:
        browser.page.locator("[data-export=worst]").click()
    lines = download.value.path().read_text(encoding="utf-8-sig").strip().splitlines()
    assert lines[0].startswith("street_id;name;commune;lifts;rate")
    assert len(lines) == 1 + browser.page.locator("#worst tbody tr").count()

    browser.page.get_by_label("Période").select_option("30")
    improving = city.streets["improving"][0]
    browser.page.locator(f"#improved tbody a[href^='/rues/{improving}']").wait_for()
    row = browser.page.locator("#improved tbody tr").first
    assert row.locator("th a").get_attribute("href").startswith(f"/rues/{improving}")
    assert re.fullmatch(r"[-\u2212]\d+,\d", row.locator("td").nth(3).inner_text())  # a drop, in points
    browser.shot("07-classement")


def test_error_type_filter_colours_by_the_share_of_that_error(browser: Browser) -> None:
    city = browser.server.city
    browser.login()
    map_ready(browser)
    browser.page.get_by_label("Type d'erreur").select_option("sac_ferme")
    map_ready(browser)
    shares = {s["street_id"]: s for s in browser.server.api("/api/error-rates", category="sac_ferme")["items"]}
    dirty = city.streets["dirty"][0]
    assert 0 < shares[dirty]["rate"] < browser.server.api(f"/api/streets/{dirty}")["rate"]
    browser.page.get_by_label("Type d'erreur").select_option("dangereux")  # no battery in the dirty streets
    browser.page.wait_for_function(f"Trivue.mapView.styleOf({dirty}).color === '{BEST}'")
    assert "category=dangereux" in browser.page.url


def _store_ambiguous_lift(server: LiveServer) -> int:
    """A lift whose street stays uncertain (street confidence below ``AMBIGUOUS``, as a lift between two
    parallel streets gets from ``server.ingest.tracks``), stored as ingest stores it; returns its street."""
    street = server.city.streets["medium"][0]
    event = make_event("benne-05", 1, datetime.now(UTC), server.city.point_of[street], {"bottle": 1},
                       SortingRules.load())
    with server.sessions() as db:
        row = lift_row(event, datetime.now(UTC), server.settings.zone, Locator.from_session(db))
        assert row["street_id"] == street
        row["street_confidence"] = AMBIGUOUS / 2
        assert insert_lifts(db, [row])
        db.commit()
    return street


def test_quality_page_counts_dead_letters_and_unmatched_lifts(browser: Browser) -> None:
    server = browser.server
    ambiguous_street = _store_ambiguous_lift(server)
    server.publish("benne-03/lift", b"{not json")
    far = make_event("benne-03", 1, datetime.now(UTC), (43.0, 5.0), {"bag": 1}, SortingRules.load())
    server.publish("benne-03/lift", far.to_json())  # in the sea off Marseille: no street near
    server.wait_for(lambda: server.api("/api/data-quality")["unmatched_too_far"] >= 1, "the unmatched lift")
    browser.login(path="/qualite")
    browser.page.wait_for_selector("body[data-ready=true]")
    quality = server.api("/api/data-quality")
    assert browser.page.locator("#kpi-unmatched").inner_text() == str(quality["unmatched"])
    assert int(browser.page.locator("#kpi-dead").inner_text()) >= 1
    assert "invalid_json" in browser.page.locator("#dead-letters").inner_text()
    assert browser.page.locator("#kpi-ambiguous").inner_text().replace("\u202f", "") == str(quality["ambiguous"])
    # The page says which lifts its figures count (those still kept) and since when its rejected messages.
    assert quality["since"][:4] in browser.page.locator("#quality-period").inner_text(), quality["since"]
    assert quality["dead_letters_since"][:4] in browser.page.locator("#kpi-dead-since").inner_text()
    assert ambiguous_street in {s["street_id"] for s in quality["ambiguous_by_street"]}
    streets = browser.page.locator("#ambiguous-streets tbody tr")
    assert streets.count() == len(quality["ambiguous_by_street"])
    for row, street in zip(streets.all(), quality["ambiguous_by_street"], strict=True):
        assert street["name"] in row.inner_text()
    browser.shot("08-qualite")


def test_quality_page_says_how_much_is_held_for_a_replay(browser: Browser) -> None:
    """A truck not yet registered sent a photo: its letter keeps it whole for a replay, and the
    page says how many such messages and how many of the megabytes allowed they take."""
    server = browser.server
    photo = b"\xff\xd8" + b"\x00" * (2 * 1024 * 1024 - 4) + b"\xff\xd9"
    with server.sessions() as db:
        db.add(DeadLetter(received_at=datetime.now(UTC), topic=f"{server.settings.topic_prefix}/benne-99/evidence/"
                          f"{uuid.uuid4()}", truck_id="benne-99", reason="unknown_truck", detail="pas encore déclaré",
                          payload=photo, payload_size=len(photo)))
        db.commit()
    held = server.api("/api/data-quality")["dead_letters_held"]
    assert held["letters"] >= 1 and held["bytes"] >= 2 * 1024 * 1024
    browser.login(path="/qualite")
    browser.page.wait_for_selector("body[data-ready=true]")
    text = browser.page.locator("#kpi-dead-held").inner_text().replace("\u202f", " ").replace("\xa0", " ")
    noun = "message" if held["letters"] < 2 else "messages"  # French 0 and 1 singular
    assert f"{held['letters']} {noun}," in text and "512 Mo au plus" in text, text


def test_english_is_one_click_away_and_remembered(browser: Browser) -> None:
    browser.login()
    map_ready(browser)
    browser.page.get_by_role("link", name="English").click()
    map_ready(browser)
    assert browser.page.locator("html").get_attribute("lang") == "en"
    assert browser.page.get_by_role("link", name="Ranking").is_visible()
    browser.page.get_by_role("link", name="Fleet").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.get_by_role("heading", name="Fleet").is_visible()
    browser.shot("09-fleet-en")
    browser.page.keyboard.press("Tab")  # keyboard: the skip link is the first stop
    assert browser.page.evaluate("document.activeElement.className") == "skip-link"


@pytest.mark.parametrize("path", ["/carte", "/classement", "/flotte"])
def test_a_tablet_in_portrait_gets_a_stacked_layout_without_sideways_scrolling(browser: Browser, path: str) -> None:
    browser.page.set_viewport_size({"width": 768, "height": 1024})
    browser.login(path=path)
    browser.page.wait_for_selector("body[data-map-state=ready], body[data-ready=true]")
    overflow = browser.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow} px on a tablet"
    if path == "/carte":
        map_box = browser.page.locator("#map").bounding_box()
        side_box = browser.page.locator(".map-side").bounding_box()
        assert side_box["y"] >= map_box["y"] + map_box["height"]  # stacked, not squeezed beside
    browser.shot(f"10-tablette{path.replace('/', '-')}")


UNLABELLED = """() => [...document.querySelectorAll('input, select, button, a[href], img')]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('alt')
                 && !e.textContent.trim() && !e.querySelector('img[alt]:not([alt=""])'))
  .map((e) => e.outerHTML.slice(0, 80))"""


def test_every_control_link_and_image_has_an_accessible_name(browser: Browser) -> None:
    dirty = browser.server.city.streets["dirty"][0]
    browser.goto("/login")
    assert browser.page.evaluate(UNLABELLED) == []
    browser.login()
    for path, ready in (("/carte", "body[data-map-state=ready]"), ("/classement", "body[data-ready=true]"),
                        (f"/rues/{dirty}", "body[data-ready=true]"), ("/qualite", "body[data-ready=true]")):
        browser.goto(path)
        browser.page.wait_for_selector(ready)
        assert browser.page.evaluate(UNLABELLED) == [], path
        assert browser.page.locator("h1").count() >= 1, path
    assert browser.page.goto(browser.server.url + "/carte") and browser.page.get_by_title("Zoom avant").count() == 1
