"""The live alert stream over real HTTP (uvicorn): events as lifts are ingested, resumable by id."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from server.web.auth import set_role
from server.web.bounds import MAX_ROW_ID
from tests.dashboard.conftest import LiveServer
from tests.dashboard.seed import PASSWORD, make_event
from vision.rules import SortingRules


def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The first ``count`` SSE events of a streaming response (``id``, ``event``, ``data``)."""
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
            continue
        field, _, value = line.partition(":")
        current[field] = value.strip()
    return events


def read_until(response: httpx.Response, wanted: set[str]) -> list[dict[str, Any]]:
    """SSE events until each alert of ``wanted`` (event ids) came: a stream resumes from a settled id,
    so alerts the page already shows may come first (the page drops them, ``alerts.js``)."""
    events, current, missing = [], {}, set(wanted)
    for line in response.iter_lines():
        if not line:
            if current.get("event") == "alert":
                events.append(current)
                missing.discard(json.loads(current["data"])["event_id"])
                if not missing:
                    return events
            current = {}
            continue
        field, _, value = line.partition(":")
        current[field] = value.strip()
    return events


def new_alerts(events: list[dict[str, Any]], shown: set[str]) -> list[str]:
    """The alerts a page showing ``shown`` adds, in order: each event id once, as ``alerts.js`` does."""
    added: list[str] = []
    for event in events:
        event_id = json.loads(event["data"])["event_id"]
        if event_id not in shown and event_id not in added:
            added.append(event_id)
    return added


@pytest.fixture
def client(live_server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=live_server.url, timeout=httpx.Timeout(10, read=20)) as client:
        # The feed is lift by lift: managers and admins only (docs/privacy.md, section 1).
        client.post("/api/login", json={"name": "gestionnaire", "password": PASSWORD}).raise_for_status()
        yield client


def test_stream_sends_alert_lifts_as_ingested_and_resumes_from_last_event_id(
        live_server: LiveServer, client: httpx.Client) -> None:
    point = live_server.city.point_of[live_server.city.streets["medium"][0]]
    rules = SortingRules.load()
    page = client.get("/api/alerts").json()
    shown = {a["event_id"] for a in page["items"]}
    gas = make_event("benne-07", 1, datetime.now(UTC), point, {"gas_cylinder": 1}, rules)
    clean = make_event("benne-07", 2, datetime.now(UTC), point, {"bottle": 1}, rules)
    battery = make_event("benne-07", 3, datetime.now(UTC), point, {"battery": 2}, rules)
    wanted = [str(gas.event_id), str(battery.event_id)]
    with client.stream("GET", "/api/alerts/stream", params={"after": page["cursor"]}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in (gas, clean, battery):
            live_server.publish("benne-07/lift", event.to_json())
        events = read_until(response, set(wanted))
    assert new_alerts(events, shown) == wanted
    first = next(e for e in events if json.loads(e["data"])["event_id"] == wanted[0])
    # A browser that lost the connection after the first event still gets the one it missed.
    with client.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": first["id"]}) as response:
        again = read_until(response, {wanted[1]})
    assert new_alerts(again, shown | {wanted[0]}) == [wanted[1]]


def test_each_event_of_one_poll_resumes_just_after_itself(live_server: LiveServer, client: httpx.Client) -> None:
    """Alerts already stored when the stream opens (a page reopened from an old cursor) come in one
    poll; each event's id must be where that event ends, not where the poll ends: a connection cut
    after the first event resumed past the second, which the page then never showed."""
    point = live_server.city.point_of[live_server.city.streets["medium"][0]]
    rules = SortingRules.load()
    page = client.get("/api/alerts").json()
    shown = {a["event_id"] for a in page["items"]}
    gas = make_event("benne-08", 1, datetime.now(UTC), point, {"gas_cylinder": 1}, rules)
    battery = make_event("benne-08", 2, datetime.now(UTC), point, {"battery": 2}, rules)
    wanted = [str(gas.event_id), str(battery.event_id)]
    for event in (gas, battery):
        live_server.publish("benne-08/lift", event.to_json())
    live_server.wait_for(lambda: set(wanted)
                         <= {a["event_id"] for a in client.get("/api/alerts", params={"limit": 50}).json()["items"]},
                         "both alerts stored")
    with client.stream("GET", "/api/alerts/stream", params={"after": page["cursor"]}) as response:
        events = read_until(response, set(wanted))
    assert new_alerts(events, shown) == wanted
    first = next(e for e in events if json.loads(e["data"])["event_id"] == wanted[0])
    assert int(first["id"]) < json.loads(events[-1]["data"])["id"]  # below the poll's later alert
    with client.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": first["id"]}) as response:
        again = read_until(response, {wanted[1]})
    assert new_alerts(again, shown | {wanted[0]}) == [wanted[1]]


def test_stream_ends_when_the_session_is_closed(live_server: LiveServer, client: httpx.Client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import server.web.dashboard_api

    monkeypatch.setattr(server.web.dashboard_api, "AUTH_RECHECK_S", 0.5)
    # After every lift: without ``after`` the stream starts from the settled id, and would send the
    # alerts the other tests stored in the last seconds.
    with client.stream("GET", "/api/alerts/stream", params={"after": MAX_ROW_ID}) as response:
        assert response.status_code == 200
        with httpx.Client(base_url=live_server.url, cookies=client.cookies) as other_tab:
            other_tab.post("/api/logout").raise_for_status()
        started = time.monotonic()
        assert read_events(response, 1) == []  # the server closed the stream, no event
    assert time.monotonic() - started < 10
    assert client.get("/api/alerts/stream").status_code == 401


def test_stream_ends_when_its_manager_is_lowered_to_viewer(live_server: LiveServer, client: httpx.Client,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import server.web.dashboard_api

    monkeypatch.setattr(server.web.dashboard_api, "AUTH_RECHECK_S", 0.5)
    with client.stream("GET", "/api/alerts/stream", params={"after": MAX_ROW_ID}) as response:
        assert response.status_code == 200
        with live_server.sessions() as db:
            set_role(db, "gestionnaire", "viewer")
            db.commit()
        try:
            started = time.monotonic()
            assert read_events(response, 1) == []  # the server closed the stream, no event
            assert time.monotonic() - started < 10
            assert client.get("/api/alerts/stream").status_code == 403
        finally:
            with live_server.sessions() as db:
                set_role(db, "gestionnaire", "manager")
                db.commit()
