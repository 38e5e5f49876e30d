"""Feed dead letters through ingest again (``trivue dead-letters replay``), a chunk at a time.

After an operator fixes what refused them (registers a truck, deploys a parser fix), the letters
go through ``Inbox.write`` again. What an operator relies on:

* bounded: letters are read ``CHUNK`` at a time by id, and no more than ``CHUNK_BYTES`` of payload
  (a letter holds 4 KiB, or a whole photo of up to ``max_evidence_bytes``: ``server.ingest.letters``),
  and each chunk is committed, so a backlog of millions neither fills memory nor holds one
  transaction open for hours; ``progress`` is told after every chunk;
* exactly once: a letter is taken by ``DELETE ... RETURNING`` in the chunk's transaction, so two
  replays running at once (or one run twice) never feed the same letter twice, and a lift that
  is valid now is inserted with ``ON CONFLICT DO NOTHING`` like any re-delivery: stored once even
  if the truck sends the same event again meanwhile. A lift older than the raw lifts' retention
  on the day of the replay is refused again (``expired``): its stored twin may have been purged
  since the letter came, and it would be counted a second time;
* a letter still refused stays a letter: same id, same received time and payload, the reason and
  detail of today's refusal (refused as ``expired``, without its payload: past its retention);
* only letters that existed when the replay began are read: one coming back refused keeps its id
  (below the cursor) and live ingest's new letters wait for the next replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from server.ingest.inbox import Inbox, MqttMessage, check_reason
from server.ingest.models import DeadLetter
from server.ingest.purge_gate import hold_off_purge

CHUNK = 500  # letters per transaction: most hold at most 4 KiB, so about 2 MiB in memory
# Payload bytes per transaction (one letter at least): the photos held whole are up to 2 MiB each,
# 500 of them a gigabyte.
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters to replay; every field left None matches all. Times are aware (UTC)."""

    reason: str | None = None
    truck_id: str | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before

    def __post_init__(self) -> None:
        check_reason(self.reason)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since {self.since:%Y-%m-%d %H:%M} is not before until {self.until:%Y-%m-%d %H:%M}")

    def clauses(self) -> list[ColumnElement[bool]]:
        # Truncated letters (payload cut at DEAD_LETTER_BYTES) cannot be replayed: never selected.
        found = [func.length(DeadLetter.payload) == DeadLetter.payload_size]
        if self.reason is not None:
            found.append(DeadLetter.reason == self.reason)
        if self.truck_id is not None:
            found.append(DeadLetter.truck_id == self.truck_id)
        if self.since is not None:
            found.append(DeadLetter.received_at >= self.since)
        if self.until is not None:
            found.append(DeadLetter.received_at < self.until)
        return found

    def describe(self) -> str:
        """The filters in one line, for the audit trail (``all`` when none)."""
        parts = [f"{name}={value:%Y-%m-%dT%H:%M:%SZ}" if isinstance(value, datetime) else f"{name}={value}"
                 for name, value in (("reason", self.reason), ("truck", self.truck_id), ("since", self.since),
                                     ("until", self.until)) if value is not None]
        return " ".join(parts) or "all"


@dataclass(slots=True)
class ReplayReport:
    total: int = 0  # replayable letters matching the filter when the replay began
    replayed: int = 0
    dead: int = 0  # refused again (still letters)

    @property
    def stored(self) -> int:
        return self.replayed - self.dead


def replay_dead_letters(session: Session, inbox: Inbox, letters: LetterFilter | None = None, chunk: int = CHUNK,
                        progress: Callable[[ReplayReport], None] | None = None,
                        report: ReplayReport | None = None, chunk_bytes: int = CHUNK_BYTES) -> ReplayReport:
    """Replay the letters ``letters`` selects, committing after each chunk of ``chunk``.

    ``report`` (optional) is filled as chunks commit, so a caller whose replay fails halfway still
    knows what was done; a chunk that fails is rolled back whole (its letters stay as they were).
    """
    letters = letters or LetterFilter()
    report = report if report is not None else ReplayReport()
    where = letters.clauses()
    last = session.scalar(select(func.max(DeadLetter.id)).where(*where))
    report.total = session.scalar(select(func.count()).select_from(DeadLetter).where(*where)) or 0
    session.commit()  # no transaction held open between chunks
    cursor = 0
    now = datetime.now(UTC)  # a lift past the retention today is refused: its twin may be purged
    while last is not None and cursor < last:
        ids = _within(session.execute(select(DeadLetter.id, DeadLetter.payload_size).where(
            DeadLetter.id > cursor, DeadLetter.id <= last, *where).order_by(DeadLetter.id).limit(chunk)).all(),
            chunk_bytes)
        if not ids:
            break
        cursor = ids[-1]
        # Before the letters are taken: the purge deletes old letters too, and a chunk holding some
        # while it waited for that purge would deadlock with it (``purge_gate``).
        hold_off_purge(session)
        # Taken, not just read: a concurrent replay that read the same ids gets none of them back.
        taken = session.execute(delete(DeadLetter).where(DeadLetter.id.in_(ids)).returning(
            DeadLetter.id, DeadLetter.topic, DeadLetter.payload, DeadLetter.received_at)).all()
        messages = [MqttMessage(topic, bytes(payload), received_at, letter_id=letter_id, replayed_at=now)
                    for letter_id, topic, payload, received_at in sorted(taken)]
        dead = inbox.write(session, messages) if messages else 0
        session.commit()
        report.replayed += len(messages)
        report.dead += dead
        if progress is not None:
            progress(report)
    return report


def _within(rows: Sequence[Any], budget: int) -> list[int]:
    """The ids of ``(id, payload_size)`` rows, in order, while their payloads fit ``budget`` (one at least)."""
    ids: list[int] = []
    for letter_id, size in rows:
        budget -= size
        if ids and budget < 0:
            break
        ids.append(letter_id)
    return ids
