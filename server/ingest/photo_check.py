"""A stored photo checked against its lift when the lift comes after it.

A truck sends a lift's photo on its own topic, before or after the lift. A photo that comes after
its stored lift is checked as it arrives (``Inbox._evidence``); one that came first, or in the
same batch as its lift, had nothing to be checked against then: it is checked here, as the lift
is written, so that a photo other than the one the lift announced is never shown as its evidence.

The row goes with the batch's transaction; the file only once that transaction commits. Deleted
at once, a batch that then failed (the database away at commit, a poison message further on: the
subscriber rolls back and retries message by message) left the row, restored by the rollback,
pointing to no file, and the retry's dead letter without the photo.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from server.ingest.evidence import EvidenceStore
from server.ingest.models import Evidence, Lift

log = logging.getLogger(__name__)

_PENDING = "trivue.photos_taken_back"  # session.info: (store, path, sha256) to delete at the commit


def mismatch_detail(sha256: str) -> str:
    """The dead letter's words for a photo that is not the one its lift announced."""
    return f"photo sha256 {sha256[:12]}… differs from the lift's"


@dataclass(frozen=True)
class RefusedPhoto:
    """A stored photo taken back: what its dead letter needs of the message it came in."""

    topic: str
    payload: bytes
    received_at: datetime
    detail: str


def take_back_mismatched(session: Session, store: EvidenceStore, topic_prefix: str,
                         lifts: Sequence[dict[str, Any]]) -> list[RefusedPhoto]:
    """Delete the stored photos whose SHA-256 differs from the one their lift in ``lifts`` announces
    (the row now, the file once the transaction commits), and return them for the dead letters
    (``evidence_mismatch``)."""
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
        payload = file.read_bytes() if file.is_file() else b""  # gone from the disk (by hand, a disk error)
        refused.append(RefusedPhoto(
            topic=f"{topic_prefix.rstrip('/')}/{photo.truck_id}/evidence/{photo.event_id}", payload=payload,
            received_at=photo.received_at,
            detail=mismatch_detail(photo.sha256)))
        session.execute(delete(Evidence).where(Evidence.event_id == photo.event_id))
        _delete_at_commit(session, store, photo.path, photo.sha256)
    return refused


def _delete_at_commit(session: Session, store: EvidenceStore, path: str, sha256: str) -> None:
    pending = session.info.get(_PENDING)
    if pending is None:  # first in this session: its listeners, once
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _delete_pending)
        event.listen(session, "after_transaction_end", _forget_pending)
    pending.append((store, path, sha256))


def _delete_pending(session: Session) -> None:
    """After the commit (the outermost transaction's only): the files of the rows it deleted."""
    pending = session.info.get(_PENDING, [])
    for store, path, sha256 in pending:
        try:
            file = store.path(path)
            # The path is the event's: a photo of the same event stored since by another worker's
            # committed batch is kept.
            if file.is_file() and hashlib.sha256(file.read_bytes()).hexdigest() == sha256:
                store.delete(path)
        except OSError as error:  # the commit is done: a file left behind is logged, not raised
            log.error("photo %s taken back but not deleted: %s", path, error.strerror or error)
    pending.clear()


def _forget_pending(session: Session, transaction: Any) -> None:
    """A transaction rolled back (or closed unfinished): its rows are back, their files stay."""
    if transaction.parent is None:
        session.info.get(_PENDING, []).clear()
