"""The audit trail (CNIL): who did or saw what, when.

Logins and account changes, reads of household-level data, exports, imports of personal data
(contacts, the bin registry), campaign reviews and sends, model roll-outs, retention purges:
every part of the server writes here, so the table and its one writer sit at the bottom of the
server's layers, beside the database. Entries are purged after ``audit_retention_days``
(``server.retention``).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.db import Base, BigId, UtcDateTime, utcnow


class AuditEntry(Base):
    """Who did or saw what: logins, household-level reads, accounts and tokens, imports, sends."""

    __tablename__ = "audit_log"
    # The journal's filters (``server.web.audit_filter``), newest first: a truck's configuration
    # history or one person's reads among a year of entries, without reading the whole table
    # (~100 ms on PostgreSQL at a million entries, for each page of the journal).
    __table_args__ = (Index("ix_audit_log_action_id", "action", "id"), Index("ix_audit_log_actor_id", "actor", "id"),
                      Index("ix_audit_log_target_id", "target", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)


def audit(session: Session, actor: str, action: str, target: str | None = None,
          detail: str | None = None) -> None:
    """One entry, in the caller's transaction: it commits with what it records, or not at all."""
    session.add(AuditEntry(at=utcnow(), actor=actor, action=action, target=target, detail=detail))


def filter_words(value: Any) -> str:
    """A request's filter as an audit detail reads it: its fields that are set, ``name=value`` with
    dates in ISO form (``street_id=343, day_since=2026-11-06``). The dataclass's repr wrote
    ``LiftFilter(street_id=343, truck_id=None, ..., day_since=datetime.date(2026, 11, 6))`` into the
    journal a DPO reads."""
    words = []
    for field in fields(value):
        item = getattr(value, field.name)
        if item is None:
            continue
        if isinstance(item, tuple):  # a scoped account's communes: 45234,45284
            item = ",".join(map(str, item))
        words.append(f"{field.name}={item.isoformat() if isinstance(item, date | datetime) else item}")
    return ", ".join(words) or "no filter"
