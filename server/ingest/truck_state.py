"""What a truck is doing, from what it says and what it sends: its ``state`` (the status message,
unless heartbeats came after it), and two agents under one truck id.

Two agents (a configuration copied to a second box, two demos on one data folder): every
heartbeat (``vision.schema.TruckStats``) tells when its agent started: ``sent_at - uptime_s``.
A restart changes that start time once; two agents sending under one id go back and forth between
theirs. The server remembers each truck's last few start times (``Truck.agents``), each with its
last heartbeat's ``sent_at`` (the truck's clock) and reception (the server's). A new heartbeat of
a start time after another start time was heard, within minutes, is a second agent. "New" and
"after" hold on both clocks: a redelivered copy (same ``sent_at``) or the old agent's last
heartbeat stored late by another ingest worker (sent before the new agent's first, on one box's
clock) is no second agent. Boxes with clocks apart still alternate, so one of the two agents'
heartbeats is seen sent after the other's. The wire schema is untouched.

Here, below the fleet and the web layers, because ingest notes the start times and the trucks API
and the fleet's liveness read both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from server.ingest.models import Truck, TruckStatus

# One agent's start time, computed from its wall clock and its monotonic uptime, wobbles by the
# clock's slew between two heartbeats: far under this. Two agents started closer than this (by one
# script) are taken for one.
SAME_AGENT = timedelta(seconds=2)
# Two agents interleave within a heartbeat period or two; going back to a start time last heard
# longer ago than this is a clock put right, not a second agent. Also how long the warning lasts
# after the last heartbeat that showed two agents (the fleet page's "silent" delay).
TWINS_WINDOW = timedelta(minutes=15)
REMEMBERED = 4  # start times kept per truck: two agents, a third, a restart of one of them


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def note(agents: dict[str, Any] | None, started: datetime, sent: datetime, received: datetime) -> dict[str, Any]:
    """``agents`` (``Truck.agents``, None at first) after a heartbeat of an agent started at ``started``,
    sent at ``sent`` (the truck's clock), received at ``received`` (the server's).

    ``{"starts": [{"started_at", "sent_at", "heard_at"}...] (last heard last), "twins_at": ISO time or None}``."""
    starts = [dict(s) for s in (agents or {}).get("starts", [])]
    twins_at = (agents or {}).get("twins_at")
    mine = next((s for s in starts if abs(_time(s["started_at"]) - started) <= SAME_AGENT), None)
    if (
        mine is not None
        and sent > _time(mine["sent_at"])
        and any(
            _time(mine["heard_at"]) < _time(o["heard_at"])
            and received - _time(o["heard_at"]) <= TWINS_WINDOW
            and sent > _time(o["sent_at"])
            for o in starts
            if o is not mine
        )
    ):
        twins_at = received.isoformat()
    if mine is None:
        mine = {"started_at": started.isoformat(), "sent_at": sent.isoformat(), "heard_at": received.isoformat()}
        starts.append(mine)
    elif sent > _time(mine["sent_at"]):
        # The latest value follows the slow drift of the agent's clock against its uptime.
        mine.update(started_at=started.isoformat(), sent_at=sent.isoformat(), heard_at=received.isoformat())
    starts.sort(key=lambda s: _time(s["heard_at"]))
    return {"starts": starts[-REMEMBERED:], "twins_at": twins_at}


def twins(agents: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """For the trucks API: when two agents or more were last seen under this id and their start
    times; None when not lately.

    The start times are those heard within ``TWINS_WINDOW`` before ``twins_at``, as ``note`` judged
    them: counted back from the latest heartbeat instead, an agent that stopped dropped out of the
    list while the warning still showed ("two agents" beside one start time)."""
    if not agents or not agents.get("twins_at") or now - _time(agents["twins_at"]) > TWINS_WINDOW:
        return None
    seen = _time(agents["twins_at"])
    starts = agents.get("starts", [])
    recent = sorted(_time(s["started_at"]) for s in starts if seen - _time(s["heard_at"]) <= TWINS_WINDOW)
    return {"seen_at": agents["twins_at"], "started_at": [s.isoformat() for s in recent]}


# Several ingest workers share the subscription, each dating what it receives by its own clock: a
# heartbeat sent just before ``stopped`` may be dated a little after it by another worker.
CLOCK_SLACK = timedelta(seconds=1)


# Not heard from for this long (or never), and not stopped: the fleet page's « Silencieux », the
# gauge ``trivue_trucks_silent``, and no longer alive for a rollout (``server.fleet.liveness``).
SILENT_AFTER = timedelta(minutes=15)


class Heard(Protocol):
    """What ``state`` reads of a truck: a ``Truck``, or a row of these three columns."""

    @property
    def status(self) -> str: ...
    @property
    def status_at(self) -> datetime | None: ...
    @property
    def last_seen_at(self) -> datetime | None: ...


def state(truck: Heard) -> TruckStatus:
    """What the truck is doing: its status message, or online when heard from after it (or heard
    from without ever sending one)."""
    said = TruckStatus(truck.status) if truck.status in TruckStatus.__members__ else TruckStatus.unknown
    heard_since = truck.last_seen_at is not None and (
        truck.status_at is None or truck.last_seen_at > truck.status_at + CLOCK_SLACK
    )
    return TruckStatus.online if said is not TruckStatus.online and heard_since else said


def silent(truck: Heard, now: datetime) -> bool:
    """Flagged « Silencieux » on the fleet page (``isSilent`` in ``fleet.js``): not heard from for
    ``SILENT_AFTER``, or never, unless it said it stopped (the end of a shift explains the silence)."""
    return state(truck) is not TruckStatus.stopped and (
        truck.last_seen_at is None or now - truck.last_seen_at > SILENT_AFTER
    )


def never_heard(known: Iterable[str] | None, stored: Iterable[str]) -> list[Truck]:
    """The trucks of ``known_trucks`` without a row (never heard from), as unsaved rows in state
    unknown, by id: the fleet page, the trucks API and the gauges list them as the rollouts count
    them (``server.fleet.liveness``); a fleet of 33 read "32 sur 32" while one had never connected."""
    missing = set(known or ()) - set(stored)
    return [Truck(truck_id=truck_id, status=TruckStatus.unknown.value) for truck_id in sorted(missing)]
