"""An alert that reaches the office late: a truck out of coverage for hours sends its lifts when it is
back, and their alerts come live at the top of the Alertes page. The crew was warned in the cab at the
time; the office must see that this one is past, not send someone to a danger of three hours ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.dashboard.conftest import Browser
from tests.dashboard.seed import make_event
from vision.rules import SortingRules


def test_an_alert_received_hours_after_its_lift_is_marked_late(browser: Browser) -> None:
    server, page = browser.server, browser.page
    point = server.city.point_of[server.city.streets["clean"][0]]
    rules = SortingRules.load()
    browser.login(path="/alertes")
    page.wait_for_selector("#live.on")
    late = make_event("benne-05", 91_001, datetime.now(UTC) - timedelta(hours=3), point, {"battery": 1}, rules)
    server.publish("benne-05/lift", late.to_json())
    item = page.locator(f"li[data-event='{late.event_id}']")
    item.wait_for()
    assert "En différé" in item.inner_text() and "reçue 3 h après la levée" in item.inner_text()
    assert page.locator("#alert-announce").inner_text().startswith("Alerte en différé")
    on_time = make_event("benne-05", 91_002, datetime.now(UTC), point, {"gas_cylinder": 1}, rules)
    server.publish("benne-05/lift", on_time.to_json())
    fresh = page.locator(f"li[data-event='{on_time.event_id}']")
    fresh.wait_for()
    assert "En différé" not in fresh.inner_text()
    assert page.locator("#alert-announce").inner_text().startswith("Nouvelle alerte")
    browser.shot("06b-alertes-en-differe")
    # The list the page loads first says it too (a page opened after the truck came back).
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert "En différé" in page.locator(f"li[data-event='{late.event_id}']").inner_text()
    assert "En différé" not in page.locator(f"li[data-event='{on_time.event_id}']").inner_text()
    received = {a["event_id"]: a["received_at"] for a in server.api("/api/alerts", limit=10)["items"]}
    assert datetime.fromisoformat(received[str(late.event_id)]) - late.started_at > timedelta(hours=2)
