"""A truck's state on the fleet API: stopped cleanly, a heartbeat newer than its status, two agents on one id.

Over the real broker and ingest, on SQLite and PostgreSQL (``server``). Before: ``stopped`` read as
unknown on the page, a heartbeat after ``stopped`` still read stopped, and two agents copy-pasted
onto one ``truck_id`` went unnoticed (their heartbeats interleaved).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from server.fleet.liveness import known_fleet, offline
from server.ingest.models import Truck
from server.ingest.truck_state import note, twins
from tests.server.conftest import Server, wait_for
from vision.schema import TruckStats


def _beat(truck_id: str, sent: datetime, uptime_s: float) -> str:
    return TruckStats(truck_id=truck_id, sent_at=sent, uptime_s=uptime_s).model_dump_json()


def _truck(server: Server, headers: dict[str, str], truck_id: str) -> dict[str, Any] | None:
    trucks = server.client.get("/api/trucks", headers=headers).json()["trucks"]
    return next((t for t in trucks if t["truck_id"] == truck_id), None)


def test_a_truck_stopped_cleanly_reads_stopped_until_it_is_heard_again(server: Server) -> None:
    headers = server.token("viewer")
    now = datetime.now(UTC)
    server.publish("benne-41/stats", _beat("benne-41", now, 3600))
    server.publish("benne-41/status", b"stopped")
    found = wait_for(
        lambda: (t := _truck(server, headers, "benne-41")) and t["status"] == "stopped" and t, "the stopped status"
    )
    assert found["state"] == "stopped" and found["online"] is False
    with server.sessions() as session:
        assert offline(session, ["benne-41"]) == ["benne-41"]
    # The agent runs after all (a second agent, a status left retained): its heartbeat is newer than
    # the status message, so the truck is online whatever that message said.
    time.sleep(1.1)  # past the slack given to the clocks of several ingest workers
    server.publish("benne-41/stats", _beat("benne-41", datetime.now(UTC), 3700))
    found = wait_for(
        lambda: (t := _truck(server, headers, "benne-41")) and t["state"] == "online" and t,
        "the heartbeat after the status",
    )
    assert found["status"] == "stopped" and found["online"] is True
    with server.sessions() as session:
        assert offline(session, ["benne-41"]) == [] and known_fleet(session, server.settings)[0] == "benne-41"
    server.publish("benne-41/status", b"stopped")  # stopped again, and nothing since
    wait_for(lambda: (t := _truck(server, headers, "benne-41")) and t["state"] == "stopped", "stopped again")


def test_offline_and_unknown_stay_apart_from_stopped(server: Server) -> None:
    headers = server.token("viewer")
    server.publish("benne-42/status", b"offline")
    found = wait_for(lambda: (t := _truck(server, headers, "benne-42")) and t, "the last will")
    assert (found["status"], found["state"], found["online"]) == ("offline", "offline", False)
    with server.sessions() as session:
        session.add(Truck(truck_id="benne-43"))  # in the registry, never heard
        session.commit()
    found = _truck(server, headers, "benne-43")
    assert found is not None and (found["status"], found["state"]) == ("unknown", "unknown")
    assert found["duplicate_agents"] is None


def test_two_agents_on_one_truck_id_are_told_apart_from_a_restart(server: Server) -> None:
    headers = server.token("viewer")
    now = datetime.now(UTC)
    # benne-44 restarts once (a new start time, kept) and an old heartbeat comes again (redelivered):
    # one agent. benne-45 has two agents, started an hour and a minute ago, heard in turn.
    for beat in (
        _beat("benne-44", now - timedelta(seconds=120), 3600),
        _beat("benne-44", now - timedelta(seconds=60), 5),
        _beat("benne-44", now, 65),
        _beat("benne-44", now - timedelta(seconds=120), 3600),
    ):
        server.publish("benne-44/stats", beat)
    for sent, uptime in ((0, 3600), (10, 60), (20, 3620), (30, 80)):
        server.publish("benne-45/stats", _beat("benne-45", now + timedelta(seconds=sent), uptime))
    twins = wait_for(lambda: (t := _truck(server, headers, "benne-45")) and t["duplicate_agents"], "two agents")
    starts = sorted(datetime.fromisoformat(s) for s in twins["started_at"])
    assert len(starts) == 2
    assert abs(starts[0] - (now - timedelta(seconds=3600))) < timedelta(seconds=1)
    assert abs(starts[1] - (now - timedelta(seconds=50))) < timedelta(seconds=1)
    assert datetime.fromisoformat(twins["seen_at"]) > now - timedelta(minutes=1)
    single = wait_for(
        lambda: (t := _truck(server, headers, "benne-44")) and t["stats"] and t["stats"]["uptime_s"] == 3600 and t,
        "benne-44's last heartbeat",
    )
    assert single["duplicate_agents"] is None


def test_the_start_times_remembered_per_truck() -> None:
    t0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    a, b = t0 - timedelta(hours=1), t0 - timedelta(seconds=30)

    def fold(*beats: tuple[datetime, int] | tuple[datetime, int, int]) -> dict[str, Any]:
        """Heartbeats (start time, sent, received: seconds after t0; received is sent unless given)."""
        agents: dict[str, Any] | None = None
        for started, sent_s, *received_s in beats:
            received = t0 + timedelta(seconds=received_s[0] if received_s else sent_s)
            agents = note(agents, started, t0 + timedelta(seconds=sent_s), received)
        return agents or {}

    assert fold((a, 0), (a, 60), (a, 120))["twins_at"] is None  # one agent
    assert fold((a, 0), (b, 60), (b, 120))["twins_at"] is None  # a restart
    assert fold((a, 0), (b, 60), (a, 0, 61))["twins_at"] is None  # a copy of the old agent's heartbeat, redelivered
    assert fold((a, 0), (a, 30, 70), (b, 60))["twins_at"] is None  # its last one, stored late by another worker
    assert fold((a, 0), (b, 60), (a, 30, 61))["twins_at"] is None
    assert (
        fold((a, 0), (b, 60), (a + timedelta(milliseconds=400), 120))["twins_at"]
        == (t0 + timedelta(seconds=120)).isoformat()
    )
    # Back to a start time last heard long before: a clock put right, not two agents at once.
    assert fold((a, 0), (b, 60), (a, 60 + 3600))["twins_at"] is None
    c = t0 - timedelta(minutes=10)
    assert fold((a, 0), (b, 20), (c, 40), (a, 60))["twins_at"] is not None  # three agents
    assert len(fold(*((t0 - timedelta(minutes=m), m * 60) for m in range(10)))["starts"]) <= 4
    # Two boxes whose clocks are 20 minutes apart: the one ahead is seen sending after the other.
    ahead = 1200
    assert fold((a, ahead, 0), (b, 10), (a, ahead + 20, 20), (b, 30))["twins_at"] is not None
    seen = fold((a, 0), (b, 60), (a, 120))
    assert twins(seen, t0 + timedelta(minutes=5)) == {
        "seen_at": seen["twins_at"],
        "started_at": [a.isoformat(), b.isoformat()],
    }
    assert twins(seen, t0 + timedelta(minutes=20)) is None  # one of them stopped since: said no more


def test_the_warning_names_two_agents_as_long_as_it_lasts() -> None:
    """A second box tried for a minute under the id: the warning lasts 15 minutes after the heartbeat
    that showed it, naming both start times to its end. Counted from the latest heartbeat, the
    second box's start fell out of the list in its last half-minute: "Two agents" beside one time."""
    t0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    a, b = t0 - timedelta(hours=1), t0 - timedelta(seconds=30)
    beats = [(a, 0), (b, 10), (a, 30), (b, 40), (a, 60), (b, 70)] + [(a, s) for s in range(90, 1200, 30)]
    agents: dict[str, Any] | None = None
    shown = 0
    for started, sent_s in beats:
        at = t0 + timedelta(seconds=sent_s)
        agents = note(agents, started, at, at)
        seen = twins(agents, at)  # what the fleet page reads right after this heartbeat
        if seen is not None:
            shown += 1
            assert sorted(seen["started_at"]) == [a.isoformat(), b.isoformat()], (sent_s, seen)
    assert shown > 20  # the warning was there, for its 15 minutes


def test_a_retained_status_delivered_again_at_a_restart_keeps_its_time(make_settings: Any, run_server: Any) -> None:
    """At every (re)connection the broker sends the retained statuses again: dated then, a truck
    stopped yesterday read "stopped just now", and one whose second agent runs read stopped (the
    status newer than its heartbeats) until that agent's next heartbeat."""
    settings = make_settings()
    with run_server(settings) as server:
        headers = server.token("viewer")
        server.publish("benne-46/stats", _beat("benne-46", datetime.now(UTC), 3600))
        server.publish("benne-46/status", b"stopped", retain=True)  # one agent stopped...
        server.publish("benne-47/status", b"stopped", retain=True)
        stopped = wait_for(lambda: (t := _truck(server, headers, "benne-47")) and t["status_at"] and t, "stopped")
        wait_for(lambda: (t := _truck(server, headers, "benne-46")) and t["status"] == "stopped", "stopped")
        time.sleep(1.1)  # past the clock slack
        server.publish("benne-46/stats", _beat("benne-46", datetime.now(UTC), 3660))  # ...the other runs
        wait_for(lambda: (t := _truck(server, headers, "benne-46")) and t["state"] == "online", "the other agent")
    time.sleep(1.1)
    with run_server(settings) as server:  # the same server, restarted: its session, its subscriptions
        server.publish("benne-48/stats", _beat("benne-48", datetime.now(UTC), 60))  # after the retained ones
        wait_for(lambda: _truck(server, headers, "benne-48"), "a message sent after the restart")
        again = _truck(server, headers, "benne-47")
        assert again is not None and again["status_at"] == stopped["status_at"]
        twin = _truck(server, headers, "benne-46")
        assert twin is not None and twin["state"] == "online", twin
        server.publish("benne-47/status", b"online", retain=True)  # news: dated when received
        moved = wait_for(lambda: (t := _truck(server, headers, "benne-47")) and t["status"] == "online" and t, "news")
        assert moved["status_at"] > stopped["status_at"]
    for truck_id in ("benne-46", "benne-47"):
        server.publish(f"{truck_id}/status", b"", retain=True)  # the broker forgets them
