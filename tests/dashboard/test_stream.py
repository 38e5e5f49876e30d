"""The live alert stream over real HTTP (uvicorn): events as lifts are ingested, resumable by id."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

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


@pytest.fixture
def client(live_server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=live_server.url, timeout=httpx.Timeout(10, read=20)) as client:
        client.post("/api/login", json={"name": "lecteur", "password": PASSWORD}).raise_for_status()
        yield client


def test_stream_sends_alert_lifts_as_ingested_and_resumes_from_last_event_id(
        live_server: LiveServer, client: httpx.Client) -> None:
    point = live_server.city.point_of[live_server.city.streets["medium"][0]]
    rules = SortingRules.load()
    cursor = client.get("/api/alerts").json()["cursor"]
    gas = make_event("benne-07", 1, datetime.now(UTC), point, {"gas_cylinder": 1}, rules)
    clean = make_event("benne-07", 2, datetime.now(UTC), point, {"bottle": 1}, rules)
    battery = make_event("benne-07", 3, datetime.now(UTC), point, {"battery": 2}, rules)
    with client.stream("GET", "/api/alerts/stream", params={"after": cursor}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in (gas, clean, battery):
            live_server.publish("benne-07/lift", event.to_json())
        first, second = read_events(response, 2)
    assert [json.loads(e["data"])["event_id"] for e in (first, second)] == [str(gas.event_id),
                                                                            str(battery.event_id)]
    assert first["event"] == "alert" and int(second["id"]) > int(first["id"]) > cursor
    # A browser that lost the connection after the first event gets exactly the one it missed.
    with client.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": first["id"]}) as response:
        (again,) = read_events(response, 1)
    assert json.loads(again["data"])["event_id"] == str(battery.event_id)


def test_each_event_of_one_poll_resumes_just_after_itself(live_server: LiveServer, client: httpx.Client) -> None:
    """Alerts already stored when the stream opens (a page reopened from an old cursor) come in one
    poll; each event's id must be where that event ends, not where the poll ends: a connection cut
    after the first event resumed past the second, which the page then never showed."""
    point = live_server.city.point_of[live_server.city.streets["medium"][0]]
    rules = SortingRules.load()
    cursor = client.get("/api/alerts").json()["cursor"]
    gas = make_event("benne-08", 1, datetime.now(UTC), point, {"gas_cylinder": 1}, rules)
    battery = make_event("benne-08", 2, datetime.now(UTC), point, {"battery": 2}, rules)
    for event in (gas, battery):
        live_server.publish("benne-08/lift", event.to_json())
    live_server.wait_for(lambda: {str(gas.event_id), str(battery.event_id)}
                         <= {a["event_id"] for a in client.get("/api/alerts", params={"limit": 50}).json()["items"]},
                         "both alerts stored")
    with client.stream("GET", "/api/alerts/stream", params={"after": cursor}) as response:
        first, second = read_events(response, 2)
    lift_ids = [json.loads(e["data"])["id"] for e in (first, second)]
    assert [json.loads(e["data"])["event_id"] for e in (first, second)] == [str(gas.event_id), str(battery.event_id)]
    assert lift_ids[0] <= int(first["id"]) < lift_ids[1] <= int(second["id"])
    with client.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": first["id"]}) as response:
        (again,) = read_events(response, 1)
    assert json.loads(again["data"])["event_id"] == str(battery.event_id)


def test_stream_ends_when_the_session_is_closed(live_server: LiveServer, client: httpx.Client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import server.web.dashboard_api

    monkeypatch.setattr(server.web.dashboard_api, "AUTH_RECHECK_S", 0.5)
    with client.stream("GET", "/api/alerts/stream") as response:
        assert response.status_code == 200
        with httpx.Client(base_url=live_server.url, cookies=client.cookies) as other_tab:
            other_tab.post("/api/logout").raise_for_status()
        started = time.monotonic()
        assert read_events(response, 1) == []  # the server closed the stream, no event
    assert time.monotonic() - started < 10
    assert client.get("/api/alerts/stream").status_code == 401
