"""The alerts page across an outage: a stream the server (or its proxy) refuses, then a check of the
session that fails too (the database briefly down, the server restarting behind nginx). The page
must come back by itself, from the cursor it had, and show the alerts stored meanwhile."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.dashboard.conftest import Browser
from tests.dashboard.seed import make_event
from vision.rules import SortingRules

SEQUENCES = itertools.count(88_000)


@pytest.mark.parametrize("session_check_fails", [False, True], ids=["proxy-502", "database-down"])
def test_alerts_page_reconnects_from_its_cursor_after_a_refused_stream(browser: Browser,
                                                                       session_check_fails: bool) -> None:
    server, page = browser.server, browser.page
    state = {"stream_refused": False, "me_refused": False}

    def stream(route: Any) -> None:
        if not state["stream_refused"]:  # the first stream: answered 502, EventSource gives up (CLOSED)
            state["stream_refused"] = True
            route.fulfill(status=502, body="Bad Gateway")
        else:
            route.continue_()

    def me(route: Any) -> None:
        if session_check_fails and state["stream_refused"] and not state["me_refused"]:
            state["me_refused"] = True
            route.fulfill(status=503, content_type="application/json", body='{"detail": "database unavailable"}')
        else:
            route.continue_()

    page.route("**/api/alerts/stream*", stream)
    page.route("**/api/me", me)
    browser.login(path="/alertes")
    page.wait_for_selector("body[data-ready=true]")
    deadline = time.monotonic() + 10
    while not (state["stream_refused"] and (state["me_refused"] or not session_check_fails)):
        assert time.monotonic() < deadline, "the page never opened its stream"
        page.wait_for_timeout(50)
    # Stored while the page has no stream: it must still come, from the page's cursor.
    street = server.city.streets["clean"][0]
    event = make_event("benne-04", next(SEQUENCES), datetime.now(UTC), server.city.point_of[street],
                       {"gas_cylinder": 1}, SortingRules.load())
    server.publish("benne-04/lift", event.to_json())
    page.locator(f"li[data-event='{event.event_id}']").wait_for(timeout=25_000)
    page.wait_for_selector("#live.on")
    browser.expected += [e for e in browser.errors if "502" in e or "503" in e]


def test_an_alert_the_stream_sends_again_is_shown_once(browser: Browser) -> None:
    """The page's cursor is a settled id, below the alerts of the last seconds (one committed late
    by another writer may still come under them): the stream sends those again, the page drops them."""
    server, page = browser.server, browser.page
    street = server.city.streets["clean"][0]
    event = make_event("benne-06", next(SEQUENCES), datetime.now(UTC), server.city.point_of[street],
                       {"battery": 1}, SortingRules.load())
    server.publish("benne-06/lift", event.to_json())
    server.wait_for(lambda: str(event.event_id) in {a["event_id"] for a in server.api("/api/alerts")["items"]},
                    "the alert stored")
    opened: list[str] = []

    def stream(route: Any) -> None:
        opened.append(route.request.url)
        route.continue_()

    page.route("**/api/alerts/stream*", stream)
    browser.login(path="/alertes")  # the page loads it in its list, then its stream sends it again
    page.wait_for_selector("#live.on")
    page.wait_for_timeout(2 * 1000)
    shown = page.eval_on_selector_all("li.alert-item", "items => items.map((i) => i.dataset.event)")
    assert opened and shown.count(str(event.event_id)) == 1
    assert len(shown) == len(set(shown))
