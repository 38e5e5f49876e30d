"""A rollout as the API, the CLI and the fleet page show it: its row, with what is derived now.

A rollout waits at its canary stage until every canary has sent its lifts with the model (or an
admin confirms): a canary that never reports leaves it there for good, and nothing in its state
says so. Two derived facts say it, nothing is stored: the canaries offline now (``start`` picks
offline trucks when too few are online), and the canaries short of their lifts not heard from for
``rollout_stall_after_s`` (the rollout is then *stalled*; confirm it, or roll another one out with
other canaries).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from server.config import ServerSettings
from server.db import utcnow
from server.fleet.liveness import offline
from server.fleet.models import Rollout, RolloutState
from server.fleet.rollout import rollout_json
from server.ingest.models import Truck


def stalled_canaries(session: Session, settings: ServerSettings, rollout: Rollout, lifts: dict[str, int]) -> list[str]:
    """The canaries short of their lifts that no message has come from for ``rollout_stall_after_s``,
    once the rollout is that old (a canary that has sent its lifts may rest: it holds nothing up)."""
    if rollout.state != RolloutState.canary.value:
        return []
    since = utcnow() - timedelta(seconds=settings.rollout_stall_after_s)
    if rollout.created_at > since:
        return []
    silent = []
    for truck_id in rollout.canary:
        truck = session.get(Truck, truck_id)
        heard = truck.last_seen_at if truck is not None else None
        if lifts.get(truck_id, 0) < rollout.canary_lifts and (heard is None or heard < since):
            silent.append(truck_id)
    return silent


def rollout_view(session: Session, settings: ServerSettings, rollout: Rollout) -> dict[str, Any]:
    """``rollout_json`` and, at the canary stage, its offline and stalled canaries (empty otherwise)."""
    view = rollout_json(session, rollout)
    at_canary = rollout.state == RolloutState.canary.value
    stalled = stalled_canaries(session, settings, rollout, view["lifts"])
    return {
        **view,
        "offline_canaries": offline(session, rollout.canary) if at_canary else [],
        "stalled": bool(stalled),
        "stalled_canaries": stalled,
        "stall_after_s": settings.rollout_stall_after_s,
    }
