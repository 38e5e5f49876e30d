"""The labels' tables: each photo's current boxes, every decision taken on it, and the frozen splits."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigId, UtcDateTime


class LabelPhoto(Base):
    """A photo someone has labelled: its boxes as they stand now (model boxes with their fate,
    boxes added by people) and whether it is finished or unusable. No row: nobody touched it yet."""

    __tablename__ = "label_photos"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), doc="todo | done | unusable")
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    annotator: Mapped[str | None] = mapped_column(String(128), doc="Who took the last decision")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LabelDecision(Base):
    """One decision (accept, delete, move, add, unusable, done, import), with the photo's state before
    it, so that undo puts that state back. The audit log has the same decision in words."""

    __tablename__ = "label_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    annotator: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    box_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), doc="status and boxes; None: no row")


class DatasetSplit(Base):
    """The split of a collection day, fixed the first time an export meets the day and never changed:
    a round's photos never straddle splits, and successive models are compared on the same test days."""

    __tablename__ = "dataset_splits"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    split: Mapped[str] = mapped_column(String(8), doc="train | val | test")
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
