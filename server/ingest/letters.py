"""What a refused message leaves in ``dead_letters``: its first 4 KiB, or all of it when a replay can
still store it.

A letter holds ``DEAD_LETTER_BYTES``: enough to see what went wrong. That lost for good the photos
of a truck not yet in ``known_trucks``: received and receipted (the truck deletes its copy), cut to
4 KiB, never replayable, while their lifts replayed fine once the truck was added. So a refusal an
operator can undo (``HELD_REASONS``) keeps the whole message, bounded three ways: no larger than
the message could be stored (``max_evidence_bytes`` for a photo, ``max_payload_bytes`` otherwise),
``dead_letter_held_bytes`` in all (read once per batch; concurrent ingest workers may each fill the
last batch's worth), and a photo's letter is purged with the photos (``server.retention``).

A lift's letter also keeps the lift's ``started_at`` when it can be read: its GPS fix and bin tag
are the raw lifts' data, purged with them (a lift of day 1 refused on day 364 was kept to day 454).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.config import ServerSettings
from server.ingest.models import DEAD_LETTER_BYTES, LARGE_LETTERS, DeadLetter

# Refusals a replay can undo without the truck: a truck added to the registry, a stream added to
# the sorting rules (``unknown_stream``), a fixed bug that broke a batch (``store_error``). A corrupt
# photo or one too large stays refused: 4 KiB is enough.
HELD_REASONS = frozenset({"unknown_truck", "unknown_stream", "store_error"})
DETAIL_CHARS = 2000
LIFT_DATE_MAX_BYTES = 1024 * 1024  # a lift is at most max_payload_bytes: larger is no lift to read


class _Dated(BaseModel):
    """The one field of a lift the retention needs, read even when the rest is refused."""

    model_config = ConfigDict(extra="ignore")
    started_at: AwareDatetime


def lift_date(kind: str, payload: bytes) -> datetime | None:
    """The ``started_at`` of a lift message (UTC), None when it is not a lift or cannot be read."""
    if kind != "lift" or not payload or len(payload) > LIFT_DATE_MAX_BYTES:
        return None
    try:
        return _Dated.model_validate_json(payload).started_at.astimezone(UTC)
    except (ValidationError, ValueError, OverflowError):
        return None


def held_letters(session: Session) -> tuple[int, int]:
    """(letters, bytes) of the payloads held whole beyond ``DEAD_LETTER_BYTES``: what counts
    against ``dead_letter_held_bytes``, through the partial index of the large letters."""
    whole = func.length(DeadLetter.payload) == DeadLetter.payload_size
    count, size = session.execute(select(func.count(), func.coalesce(func.sum(DeadLetter.payload_size), 0))
                                  .where(LARGE_LETTERS, whole)).one()
    return int(count), int(size)


HEAD_BYTES = 512  # what the API shows of a payload, at household level


@dataclass(frozen=True, slots=True)
class LetterView:
    """A letter as listed: its payload's first ``HEAD_BYTES`` and whether all of it is kept, never
    the payload itself (50 held photos were 100 MiB read per view of the data-quality page)."""

    id: int
    received_at: datetime
    topic: str
    truck_id: str | None
    reason: str
    detail: str
    payload_size: int
    head: bytes
    replayable: bool


def letter_views(session: Session, query: Any) -> list[LetterView]:
    """``query``'s letters (a ``select`` of ``DeadLetter`` rows narrowed and ordered) as views."""
    found = query.with_only_columns(
        DeadLetter.id, DeadLetter.received_at, DeadLetter.topic, DeadLetter.truck_id, DeadLetter.reason,
        DeadLetter.detail, DeadLetter.payload_size, func.substr(DeadLetter.payload, 1, HEAD_BYTES),
        func.length(DeadLetter.payload))
    return [LetterView(*row[:7], bytes(row[7] or b""), row[8] == row[6]) for row in session.execute(found)]


def held_summary(session: Session, settings: ServerSettings) -> dict[str, int]:
    """What the API and the data-quality page say of the held payloads."""
    letters, size = held_letters(session)
    return {"letters": letters, "bytes": size, "limit_bytes": settings.dead_letter_held_bytes}


@dataclass(slots=True)
class HeldBudget:
    """Bytes one batch may still hold whole: the total read at the batch's first large letter."""

    settings: ServerSettings
    left: int | None = None

    def decide(self, session: Session, kind: str, reason: str, payload: bytes, replayed: bool) -> tuple[bool, str]:
        """(whole, why not): whether the letter keeps all of ``payload``, and what its detail says if not."""
        size = len(payload)
        if size <= DEAD_LETTER_BYTES or reason not in HELD_REASONS:
            return False, ""
        limit = (self.settings.max_evidence_bytes if kind == "evidence" else
                 self.settings.max_payload_bytes if kind in ("lift", "stats", "status") else 0)
        if size > limit:  # a replay would refuse it as too_large anyway
            return False, f" (first 4 KiB kept, not replayable: {size} bytes, over the {limit} a message may have)"
        if replayed:  # a replayed letter is whole and was counted: it stays whole whatever the cap now
            return True, ""
        if self.left is None:
            self.left = self.settings.dead_letter_held_bytes - held_letters(session)[1]
        if size > self.left:
            return False, (f" (first 4 KiB kept, not replayable: the {self.settings.dead_letter_held_bytes} bytes "
                           "of dead_letter_held_bytes are held by other letters)")
        self.left -= size
        return True, ""


def letter_row(message: Any, reason: str, detail: str, truck_id: str | None, kind: str, whole: bool = False,
               note: str = "") -> dict[str, Any]:
    """The ``dead_letters`` row of ``message`` (an ``inbox.MqttMessage``); ``note`` ends its detail."""
    # An ``expired`` message is past its retention (a lift's GPS fix and bin tag, a photo): kept as
    # a letter it would live ``dead_letter_retention_days`` more. The detail says what and when; an
    # empty payload shorter than ``payload_size`` is never replayed (``replay.LetterFilter``).
    payload = b"" if reason == "expired" else message.payload if whole else message.payload[:DEAD_LETTER_BYTES]
    row = {"received_at": message.received_at, "topic": message.topic[:512], "truck_id": truck_id,
           "reason": reason, "detail": detail[:DETAIL_CHARS - len(note)] + note, "payload": payload,
           "payload_size": len(message.payload),
           # Only a letter that keeps some of the lift holds its data, and then it goes with the lifts.
           "lift_started_at": lift_date(kind, message.payload) if payload else None}
    if message.letter_id is not None:  # replayed and refused again: the same letter, not a new one
        row["id"] = message.letter_id
    return row
