"""``/metrics`` counts trucks as the fleet page and ``/api/trucks`` show them (SQLite and PostgreSQL).

Before: ``trivue_trucks{status}`` counted the last status message as sent: a truck heard after its
``stopped`` (a second agent) counted stopped while the page said *En ligne*, and no gauge told the
trucks the page flags *Silencieux*: an alert on silent trucks had nothing to read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.ingest.models import Truck
from tests.server.conftest import Server


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def samples(body: str, name: str) -> dict[str, float]:
    """The series of ``name``: label text ('' without labels) -> value."""
    found = re.findall(rf"^{name}(?:\{{(.*)\}})? (\S+)$", body, re.MULTILINE)
    return {labels: float(value) for labels, value in found}


def silent_on_the_page(truck: dict[str, Any], now: datetime) -> bool:
    """``isSilent`` of server/static/fleet.js: not stopped, and not heard for 15 minutes (or never)."""
    seen = truck["last_seen_at"]
    return truck["state"] != "stopped" and (seen is None or (now - datetime.fromisoformat(seen)).total_seconds() > 900)


def test_the_truck_gauges_say_what_the_fleet_page_says(api: Server) -> None:
    now = datetime.now(UTC)
    with api.sessions() as session:
        for truck_id, status, status_at, seen in (
            ("benne-71", "online", now - timedelta(hours=2), now - timedelta(seconds=30)),  # at work
            ("benne-72", "online", now - timedelta(hours=2), now - timedelta(minutes=20)),  # online, silent
            ("benne-73", "stopped", now - timedelta(hours=1), now - timedelta(hours=1, seconds=30)),  # end of shift
            ("benne-74", "stopped", now - timedelta(hours=1), now - timedelta(minutes=1)),  # heard since: online
            ("benne-75", "offline", now - timedelta(hours=3), now - timedelta(hours=3)),  # connection lost, silent
            ("benne-76", "offline", now - timedelta(minutes=2), now - timedelta(minutes=3)),  # lost, not yet silent
            ("benne-77", "unknown", None, None),  # registered, never heard: silent
        ):
            session.add(Truck(truck_id=truck_id, status=status, status_at=status_at, last_seen_at=seen))
        session.commit()
    headers = api.token("viewer")
    body = api.client.get("/metrics", headers=headers).text
    trucks = api.client.get("/api/trucks", headers=headers).json()["trucks"]
    states = Counter(t["state"] for t in trucks)
    assert samples(body, "trivue_trucks") == {
        f'state="{state}"': float(states[state]) for state in ("online", "offline", "stopped", "unknown")
    }
    assert states == {"online": 3, "offline": 2, "stopped": 1, "unknown": 1}
    silent = sorted(t["truck_id"] for t in trucks if silent_on_the_page(t, datetime.now(UTC)))
    assert silent == ["benne-72", "benne-75", "benne-77"]
    assert samples(body, "trivue_trucks_silent") == {"": 3.0}
    # The API says it too, by the server's clock: the page reads it rather than the browser's clock.
    assert sorted(t["truck_id"] for t in trucks if t["silent"]) == silent


def test_a_registered_truck_never_heard_is_on_the_page_and_in_the_gauges(make_settings: Any, run_server: Any) -> None:
    """Orléans lists its 33 trucks in ``known_trucks``; one never connected was left out of
    ``/api/trucks`` (the page read "32 sur 32") and of the gauges, while rollouts counted it."""
    with run_server(make_settings(ingest_enabled=False, known_trucks=["benne-78", "benne-79"])) as server:
        with server.sessions() as session:
            session.add(Truck(truck_id="benne-78", status="online", last_seen_at=datetime.now(UTC)))
            session.commit()
        headers = server.token("viewer")
        trucks = server.client.get("/api/trucks", headers=headers).json()["trucks"]
        assert [(t["truck_id"], t["state"], t["silent"]) for t in trucks] == [
            ("benne-78", "online", False),
            ("benne-79", "unknown", True),
        ]
        never = trucks[1]
        assert (never["status"], never["last_seen_at"], never["stats"], never["lifts_7d"]) == ("unknown", None, None, 0)
        body = server.client.get("/metrics", headers=headers).text
        assert samples(body, "trivue_trucks") == {
            'state="online"': 1.0,
            'state="offline"': 0.0,
            'state="stopped"': 0.0,
            'state="unknown"': 1.0,
        }
        assert samples(body, "trivue_trucks_silent") == {"": 1.0}


def test_the_truck_gauges_are_there_with_no_truck(api: Server) -> None:
    """Every state at 0 rather than no series: ``trivue_trucks{state="offline"} > 0`` reads 0, not nothing."""
    body = api.client.get("/metrics", headers=api.token("viewer")).text
    assert samples(body, "trivue_trucks") == {f'state="{s}"': 0.0 for s in ("online", "offline", "stopped", "unknown")}
    assert samples(body, "trivue_trucks_silent") == {"": 0.0}
