"""Which trucks are alive: online and heard from lately. Canaries are picked among them first; a
canary that is not is said when the rollout starts (``server.fleet.rollout.start``).

Online is the truck's ``state``: its last status message (retained ``online``, ``offline`` as the
last will, ``stopped`` on a clean exit), unless the truck was heard after it: an agent whose
heartbeats are newer than its ``stopped`` or ``offline`` runs (a second agent under its id, a
status left retained by an agent before). The fleet page and the trucks API show the same."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import ServerSettings
from server.db import utcnow
from server.ingest.models import Truck, TruckStatus
from server.ingest.truck_state import silent, state


def _is_alive(truck: Truck | None, now: datetime) -> bool:
    """Online and not flagged silent, by the fleet page's one rule (``truck_state.silent``)."""
    return truck is not None and state(truck) is TruckStatus.online and not silent(truck, now)


def _alive(session: Session, settings: ServerSettings) -> dict[str, bool]:
    """Every truck known to the server (seen, or in ``known_trucks``): alive or not."""
    now = utcnow()
    alive = {t.truck_id: _is_alive(t, now) for t in session.scalars(select(Truck))}
    for truck_id in settings.known_trucks or ():
        alive.setdefault(truck_id, False)
    return alive


def known_fleet(session: Session, settings: ServerSettings) -> list[str]:
    """Trucks known to the server: alive first (a canary must send lifts soon), then by id."""
    alive = _alive(session, settings)
    return sorted(alive, key=lambda t: (not alive[t], t))


def offline(session: Session, truck_ids: Sequence[str]) -> list[str]:
    """Those of ``truck_ids`` that are not alive (never seen included), in their order."""
    now = utcnow()
    return [t for t in truck_ids if not _is_alive(session.get(Truck, t), now)]
