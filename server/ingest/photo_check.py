"""A stored photo checked against its lift when the lift comes after it.

A truck sends a lift's photo on its own topic, before or after the lift. A photo that comes after
its stored lift is checked as it arrives (``Inbox._evidence``); one that came first, or in the
same batch as its lift, had nothing to be checked against then: it is checked here, as the lift
is written, so that a photo the lift never announced is never shown as its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.ingest.evidence import EvidenceStore
from server.ingest.models import Evidence, Lift


@dataclass(frozen=True)
class RefusedPhoto:
    """A stored photo taken back: what its dead letter needs of the message it came in."""

    topic: str
    payload: bytes
    received_at: datetime
    detail: str


def take_back_mismatched(session: Session, store: EvidenceStore, topic_prefix: str,
                         lifts: Sequence[dict[str, Any]]) -> list[RefusedPhoto]:
    """Delete the stored photos (row and file) whose SHA-256 differs from the one their lift in
    ``lifts`` announces, and return them for the dead letters (``evidence_mismatch``)."""
    first: dict[str, dict[str, Any]] = {}
    for row in lifts:  # the first copy in a batch is the one stored (``insert_lifts``)
        first.setdefault(row["event_id"], row)
    announced = {event_id: row["evidence_sha256"] for event_id, row in first.items() if row.get("evidence_sha256")}
    if not announced:
        return []
    # Photos usually come after their lift: most batches find none here (primary key look-ups).
    stored = session.execute(select(Evidence).where(Evidence.event_id.in_(sorted(announced)))).scalars().all()
    if not stored:
        return []
    # A copy of the lift stored before wins over this batch's (a re-sent lift changes nothing): looked
    # up with its started_at, so that PostgreSQL probes one month partition, not all of them.
    for photo in stored:
        row = first[photo.event_id]
        kept = session.execute(select(Lift.evidence_sha256).where(Lift.event_id == photo.event_id,
                                                                  Lift.started_at == row["started_at"])).first()
        if kept is not None:
            announced[photo.event_id] = kept.evidence_sha256
    refused = []
    for photo in stored:
        if announced[photo.event_id] in (None, photo.sha256):  # None: the stored lift announced no photo
            continue
        file = store.path(photo.path)
        payload = file.read_bytes() if file.is_file() else b""  # gone: a batch retried after a rollback
        refused.append(RefusedPhoto(
            topic=f"{topic_prefix.rstrip('/')}/{photo.truck_id}/evidence/{photo.event_id}", payload=payload,
            received_at=photo.received_at,
            detail=f"photo sha256 {photo.sha256[:12]}… differs from the lift's"))
        session.execute(delete(Evidence).where(Evidence.event_id == photo.event_id))
        store.delete(photo.path)
    return refused
