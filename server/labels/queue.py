"""The photos waiting for labels, filtered by reason, class, truck and day, and one photo as the page shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.config import ServerSettings
from server.db import utcnow
from server.ingest.models import Evidence, Lift
from server.labels.models import LabelPhoto
from server.labels.store import TODO, current, expires_on, version
from vision.rules import SortingRules

MAX_QUEUE = 2_000  # photos listed at once; filters narrow a longer queue
# A photo another annotator opened or decided on this recently is theirs for now: long enough to label
# a crowded hopper, short enough that a photo left open at lunch comes back the same afternoon.
HELD = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    reason: str | None = None
    class_: str | None = None
    truck_id: str | None = None
    since: date | None = None
    until: date | None = None
    status: str | None = None  # todo | done | unusable; None: all


def _rows(session: Session, flt: QueueFilter, photo_days: int, lift_days: int) -> list[Any]:
    """(event_id, model boxes, label status, label boxes) of the matching photos: those of lifts a manager
    overruled first (the model was plainly wrong there: the most useful photos to label), then in
    collection order.

    Only the columns the queue needs: a month of a fleet's photos is tens of thousands of rows."""
    # Photos from 1.0 trucks (boxes drawn on them, no detections) are not labelling material, nor are
    # photos past their labelling date (``expires_on`` today or before, store.labellable): the purge
    # takes them hours later, and meanwhile the queue, oldest first, began with photos answering 410.
    # Nor are photos of lifts whose camera view was unusable (wire 1.4: dark, over-exposed, covered,
    # blurred or frozen), overruled or not: a black or smeared frame teaches the model nothing.
    # Driven by the photos (kept 30 days), each lift found by its event id: joined the other way,
    # SQLite walked every lift ever stored in time order to find the few with a photo.
    tomorrow = datetime.combine(utcnow().date() + timedelta(days=1), time(), UTC)
    kept = select(Evidence.event_id).where(Evidence.received_at >= tomorrow - timedelta(days=photo_days))
    query = (select(Lift.event_id, Lift.evidence_detections, LabelPhoto.status, LabelPhoto.boxes, Lift.started_at)
             .outerjoin(LabelPhoto, LabelPhoto.event_id == Lift.event_id)
             .where(Lift.event_id.in_(kept), Lift.evidence_detections.is_not(None), Lift.view_unusable.is_(None))
             .order_by(Lift.overruled_at.is_(None), Lift.started_at, Lift.id))
    if flt.reason:
        query = query.where(Lift.evidence_reason == flt.reason)
    if flt.truck_id:
        query = query.where(Lift.truck_id == flt.truck_id)
    if flt.since:
        query = query.where(Lift.day >= flt.since)
    if flt.until:
        query = query.where(Lift.day <= flt.until)
    # The lift's own retention (years) rarely comes first; checked here, not in SQL, where a range on
    # started_at could tempt SQLite into walking the lifts again.
    lifts_from = tomorrow - timedelta(days=lift_days)
    return [row[:4] for row in session.execute(query) if row.started_at >= lifts_from]


def _classes(detections: list[dict[str, Any]], labelled: list[dict[str, Any]] | None,
             rules: SortingRules) -> set[str]:
    if labelled is not None:
        return {b["class"] for b in labelled if b["state"] != "deleted"}
    return {rules.canonical(d["class"]) for d in detections} - {None}


def held_by_others(session: Session, actor: str) -> set[str]:
    """Event ids of the photos other annotators opened (the labelling photo's read) or decided on in
    the last ``HELD``: the audit log has both, with the time (indexed), whoever labels by API or page."""
    query = (select(AuditEntry.target).where(AuditEntry.at >= utcnow() - HELD, AuditEntry.actor != actor,
                                             or_(and_(AuditEntry.action == "evidence.read",
                                                      AuditEntry.detail == "labelling"),
                                                 AuditEntry.action.like("labels.%")))
             .distinct())
    return {target for target in session.scalars(query) if target}


def queue(session: Session, flt: QueueFilter, rules: SortingRules, photo_days: int, lift_days: int,
          actor: str | None = None) -> dict[str, Any]:
    """Event ids of the matching photos that may still be labelled, overruled lifts' first, then in
    collection order, with the progress count. For ``actor``, the photos still to label that another
    annotator has open go last: two or three annotators at once all began on the same photo,
    labelled it twice, then leapfrogged onto the same next one."""
    rows = _rows(session, flt, photo_days, lift_days)
    status = {event_id: label_status or TODO for event_id, detections, label_status, labelled in rows
              if not flt.class_ or flt.class_ in _classes(detections, labelled, rules)}
    chosen = [e for e, s in status.items() if flt.status is None or s == flt.status]
    if actor is not None:
        held = held_by_others(session, actor)
        chosen.sort(key=lambda e: status[e] == TODO and e in held)  # stable: the order otherwise kept
    return {"total": len(status), "done": sum(s != TODO for s in status.values()),
            "items": [{"event_id": e, "status": status[e]} for e in chosen[:MAX_QUEUE]]}


def photo_view(session: Session, settings: ServerSettings, lift: Lift, photo: Evidence,
               rules: SortingRules) -> dict[str, Any]:
    """What the annotation page shows of a photo: no address, no bin, no position (privacy)."""
    status, boxes, annotator = current(session, lift, rules)
    return {
        "event_id": lift.event_id, "truck_id": lift.truck_id, "day": lift.day.isoformat(),
        "stream": lift.stream, "reason": lift.evidence_reason or "contaminated", "status": status,
        "model_version": f"{lift.model_name}:{lift.model_version}", "annotator": annotator,
        "width": photo.width, "height": photo.height, "image_url": f"/api/labels/photos/{lift.event_id}/photo.jpg",
        "expires_on": expires_on(photo, lift.started_at, settings.evidence_retention_days,
                                 settings.retention_days).isoformat(),
        "boxes": boxes, "version": version(session, lift.event_id),
        # Why a manager judged the truck wrong (server.ingest.overrule): what the annotator should look at.
        "overrule_reason": lift.overrule_reason if lift.overruled_at is not None else None,
    }
