"""A lift's judgement overruled by a person (GDPR art. 16 rectification, art. 22 human review).

A household disputes "my bin was not contaminated", or a reviewer sees a plainly wrong detection: a
manager overrules the lift. The truck's judgement stays stored as sent (``contaminated``, ``errors``,
``score`` never change); ``overruled_at`` / ``overruled_by`` / ``overrule_reason`` are set and, in the
same transaction, the lift leaves the aggregates as judged and comes back clean (no contamination,
no error item, no alert, score 0), through ``add_to_aggregates`` as a lift moved by its truck's path
does (``server.ingest.tracks``). Undo does the reverse. Both are guarded by the column they change,
so a second overrule, or a second undo, changes nothing: each counts exactly once, also when two
requests race (the row's lock on PostgreSQL, the single writer on SQLite).

Everything that reads contamination from raw lifts counts an overruled lift clean too: the bulk
rebuild (``rebuild_aggregates``), the reminders' plan and effect, and its photo goes to the front of
the labelling queue (``server.labels.queue``) with the reason for the annotator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.ingest.aggregates import add_to_aggregates
from server.ingest.models import Lift

MAX_REASON = 300  # characters: a short note, not a file (the column's width)
# What the aggregates need of a lift to take it out and put it back (``aggregates._tally``, ``quality``).
_COUNTED = (Lift.street_id, Lift.day, Lift.stream, Lift.contaminated, Lift.has_alert, Lift.score, Lift.errors,
            Lift.lat, Lift.match_confidence, Lift.street_confidence, Lift.view_unusable)


@dataclass(frozen=True, slots=True)
class Change:
    """What an overrule or an undo changed: nothing when the lift was already in that state."""

    changed: bool
    street_id: int | None = None
    day: str | None = None
    error_items: int = 0  # the truck's error items the figures lost (overrule) or got back (undo)

    def audit_detail(self) -> str:
        """Counts and ids for the audit trail, never the reason (free text may name someone)."""
        return f"street={self.street_id} day={self.day} error_items={self.error_items}"


def _move(session: Session, row: Any, now: datetime, *, overruled: bool) -> Change:
    """Take the lift out of the aggregates as it counted before, put it back as it counts now
    (``overruled``: clean). ``_tally`` reads only whether ``overruled_at`` is set."""
    stored = dict(row._mapping)
    before, after = (None, now) if overruled else (now, None)
    add_to_aggregates(session, [{**stored, "overruled_at": before}], sign=-1)  # type: ignore[list-item]
    add_to_aggregates(session, [{**stored, "overruled_at": after}])  # type: ignore[list-item]
    items = sum(int(e.get("count", 0)) for e in stored["errors"] or ())
    return Change(True, stored["street_id"], stored["day"].isoformat(), items)


def overrule(session: Session, event_id: str, actor: str, reason: str, now: datetime) -> Change:
    """Mark the lift judged wrong and count it clean; nothing changes when it already is (the first
    reason stays). The caller checks that the lift exists, audits and commits."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise ValueError(f"reason: 1 to {MAX_REASON} characters, got {len(reason)}")
    # Guarded by ``overruled_at IS NULL``: of two overrules only one finds the row, and RETURNING gives
    # the row as it stands after any concurrent street move (PostgreSQL re-reads it under its lock).
    row = session.execute(
        update(Lift).where(Lift.event_id == event_id, Lift.overruled_at.is_(None))
        .values(overruled_at=now, overruled_by=actor, overrule_reason=reason)
        .returning(*_COUNTED)).first()
    return Change(False) if row is None else _move(session, row, now, overruled=True)


def undo_overrule(session: Session, event_id: str, now: datetime) -> Change:
    """Put the truck's judgement back in the aggregates; nothing changes when the lift is not overruled."""
    row = session.execute(
        update(Lift).where(Lift.event_id == event_id, Lift.overruled_at.is_not(None))
        .values(overruled_at=None, overruled_by=None, overrule_reason=None)
        .returning(*_COUNTED)).first()
    return Change(False) if row is None else _move(session, row, now, overruled=False)
