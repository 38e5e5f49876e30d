"""Labelling decisions on a photo's boxes: accept, delete, move or resize, add, unusable, done, undo.

A photo's boxes start as the model's (``lifts.evidence_detections``, mapped to the rules' classes)
and change only through ``decide``, which keeps the state before each decision (for undo) and
writes the decision to the audit log with the annotator and the time. Photos are personal data:
a photo past its retention date cannot be labelled any more, whatever the purge has done yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.ingest.models import Evidence, Lift
from server.labels.models import LabelDecision, LabelPhoto
from vision.rules import SortingRules

TODO, DONE, UNUSABLE = "todo", "done", "unusable"
PENDING, ACCEPTED, DELETED = "pending", "accepted", "deleted"
ACTIONS = ("accept", "delete", "move", "add", "unusable", "done", "undo")
MAX_BOXES = 300  # boxes on one photo: a hopper photo shows tens; more is a stuck script
COORDS = ("x1", "y1", "x2", "y2")
# A decision that waited this long for another writer's lock is logged: a Ctrl+Z dashboard test once
# took 15 s behind a held SQLite write lock, and nothing said which decision waited.
SLOW_LOCK_S = 1.0

log = logging.getLogger(__name__)


class LabelError(ValueError):
    """A refused decision; ``kind`` picks the HTTP status (not_found 404, expired 410, invalid 422,
    conflict 409). ``reason`` and ``params`` say why for a machine: the dashboard words the refusal
    in the reader's language (``ann.refusal.<reason>`` in ``templates/i18n``), as the fleet does with
    a rollout's ``reason_code``; the English message stays for scripts, the CLI and the log."""

    def __init__(self, kind: Literal["not_found", "expired", "invalid", "conflict"], message: str, reason: str,
                 **params: Any) -> None:
        super().__init__(message)
        self.kind, self.reason, self.params = kind, reason, params


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    box_id: int | None = None
    class_: str | None = None
    xyxy: tuple[float, float, float, float] | None = None
    seen: int | None = None  # the photo's version the decision was taken on (``version``); None: unchecked


def taxonomy(rules: SortingRules) -> tuple[str, ...]:
    """The classes a box may have: every class of the server's sorting rules (the settings'
    ``sorting_rules``, the trucks' file), in file order, batteries and gas cylinders included even
    where the model cannot see them yet."""
    return tuple(rules.spec.classes)


# A box thinner than a pixel of the photos (640 to 1280 px) is no object; the export writes six
# decimals, so one under 5e-7 became a YOLO box of width 0.000000, which training chokes on.
MIN_BOX = 0.001


def check_box(class_: str, xyxy: tuple[float, float, float, float], where: str, rules: SortingRules) -> None:
    """A box of a known class, inside the photo and not empty; LabelError naming what is wrong."""
    if class_ not in rules.spec.classes:
        raise LabelError("invalid", f"{where}: unknown class {class_!r} (known: {', '.join(taxonomy(rules))})",
                         "unknown_class", **{"class": class_})
    x1, y1, x2, y2 = xyxy
    if not all(0.0 <= v <= 1.0 for v in xyxy):
        raise LabelError("invalid", f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) leaves the photo "
                                    "(coordinates are fractions of the photo, 0 to 1)", "box_outside")
    if x2 <= x1 or y2 <= y1:
        raise LabelError("invalid", f"{where}: empty box ({x1:g}, {y1:g}, {x2:g}, {y2:g}): x2 > x1 and y2 > y1 needed",
                         "box_empty")
    if x2 - x1 < MIN_BOX or y2 - y1 < MIN_BOX:
        raise LabelError("invalid", f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is under {MIN_BOX:g} of the photo "
                                    "wide or high (less than a pixel): no object, a slip of the mouse", "box_too_small")


def model_boxes(detections: list[dict[str, Any]] | None, rules: SortingRules) -> list[dict[str, Any]]:
    """The truck's boxes as labelling boxes: model classes mapped to the rules' classes (ignored
    classes, not waste, are left out), each pending a decision."""
    boxes = []
    for det in detections or []:
        name = rules.canonical(det["class"])
        if name is None:
            continue
        boxes.append({"id": len(boxes) + 1, "class": name, **{k: float(det[k]) for k in COORDS},
                      "origin": "model", "state": PENDING, "model_class": det["class"],
                      "confidence": det.get("confidence")})
    return boxes


def expires_on(photo: Evidence, lift_started: datetime, photo_days: int, lift_days: int) -> date:
    """The day the photo is deleted: its own retention, or its lift's if that comes first."""
    return min(photo.received_at + timedelta(days=photo_days), lift_started + timedelta(days=lift_days)).date()


def labellable(session: Session, event_id: str, photo_days: int, lift_days: int) -> tuple[Lift, Evidence]:
    """The lift and its photo, when the photo may still be labelled; LabelError otherwise."""
    lift = session.scalar(select(Lift).where(Lift.event_id == event_id))
    if lift is None or lift.evidence_sha256 is None:
        raise LabelError("not_found", f"no photo for lift {event_id}", "no_photo")
    photo = session.get(Evidence, event_id)
    if photo is None:
        raise LabelError("expired", f"the photo of lift {event_id} is no longer on the server (kept {photo_days} "
                                    "days, or never received): it can no longer be labelled", "photo_gone",
                         days=photo_days)
    until = expires_on(photo, lift.started_at, photo_days, lift_days)
    if until <= utcnow().date():
        raise LabelError("expired", f"the photo of lift {event_id} expired on {until.isoformat()} "
                                    f"(kept {photo_days} days): it can no longer be labelled", "photo_expired",
                         on=until.isoformat(), days=photo_days)
    if lift.evidence_detections is None:
        raise LabelError("invalid", f"the photo of lift {event_id} comes from a wire 1.0 truck (boxes drawn on "
                                    "the photo): it is not labelling material", "old_truck")
    if lift.view_unusable is not None:  # wire 1.4: a dark, covered, blurred or frozen frame teaches nothing
        raise LabelError("invalid", f"the photo of lift {event_id} shows an unusable camera view "
                                    f"({lift.view_unusable}): it is not labelling material", "view_unusable",
                         problem=lift.view_unusable)
    return lift, photo


def current(session: Session, lift: Lift, rules: SortingRules) -> tuple[str, list[dict[str, Any]], str | None]:
    """(status, boxes, last annotator) of a photo, the model's boxes when nobody labelled it yet."""
    row = session.get(LabelPhoto, lift.event_id)
    if row is None:
        return TODO, model_boxes(lift.evidence_detections, rules), None
    return row.status, [dict(b) for b in row.boxes], row.annotator


def _find(boxes: list[dict[str, Any]], box_id: int | None) -> dict[str, Any]:
    for box in boxes:
        if box["id"] == box_id and box["state"] != DELETED:
            return box
    raise LabelError("invalid", f"no box {box_id} on this photo", "no_box", box=box_id)


def _on_box(boxes: list[dict[str, Any]], decision: Decision, rules: SortingRules) -> None:
    box = _find(boxes, decision.box_id)
    if decision.action == "delete":
        box["state"] = DELETED
    elif decision.action == "move":
        if decision.xyxy is None and decision.class_ is None:
            raise LabelError("invalid", "move needs the new box (x1, y1, x2, y2), a new class, or both", "move_needs")
        xyxy = decision.xyxy or tuple(box[k] for k in COORDS)
        check_box(decision.class_ or box["class"], xyxy, f"box {box['id']}", rules)
        box.update(zip(COORDS, xyxy, strict=True), **{"class": decision.class_ or box["class"]})
        box["state"], box["edited"] = ACCEPTED, True
    else:
        box["state"] = ACCEPTED


def _add(boxes: list[dict[str, Any]], decision: Decision, rules: SortingRules) -> None:
    if decision.class_ is None or decision.xyxy is None:
        raise LabelError("invalid", "add needs a class and a box (x1, y1, x2, y2)", "add_needs")
    check_box(decision.class_, decision.xyxy, "new box", rules)
    if len(boxes) >= MAX_BOXES:
        raise LabelError("invalid", f"a photo holds at most {MAX_BOXES} boxes", "too_many_boxes", max=MAX_BOXES)
    boxes.append({"id": max((b["id"] for b in boxes), default=0) + 1, "class": decision.class_,
                  **dict(zip(COORDS, decision.xyxy, strict=True)), "origin": "human", "state": ACCEPTED,
                  "model_class": None, "confidence": None})


def apply(status: str, boxes: list[dict[str, Any]], decision: Decision,
          rules: SortingRules) -> tuple[str, list[dict[str, Any]]]:
    """The photo's state after one decision (pure: the caller stores it)."""
    action = decision.action
    if action in ("accept", "delete", "move"):
        _on_box(boxes, decision, rules)
    elif action == "add":
        _add(boxes, decision, rules)
    elif action == "done":  # what the annotator left as the model drew it is right
        for box in boxes:
            if box["state"] == PENDING:
                box["state"] = ACCEPTED
        status = DONE
    elif action == "unusable":
        status = UNUSABLE
    else:
        raise LabelError("invalid", f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}",
                         "unknown_action")
    if status == DONE and action != "done":  # a finished photo edited again stays finished if nothing is pending
        status = TODO if any(b["state"] == PENDING for b in boxes) else DONE
    return status, boxes


def store(session: Session, event_id: str, status: str, boxes: list[dict[str, Any]], actor: str) -> None:
    row = session.get(LabelPhoto, event_id)
    if row is None:
        session.add(LabelPhoto(event_id=event_id, status=status, boxes=boxes, annotator=actor, updated_at=utcnow()))
    else:
        row.status, row.boxes, row.annotator, row.updated_at = status, boxes, actor, utcnow()


def lock(session: Session, event_id: str, what: str = "a labels write") -> None:
    """Hold the photo until the caller commits: a decision reads the photo's boxes, changes them and
    writes them all back, so two annotators deciding at once on one photo (both start at the head of
    the same queue) each wrote back the photo as they had read it, and the first decision was lost.
    PostgreSQL locks the lift's row; SQLite takes its write lock, which waits for the other writer.
    ``what`` names the operation ("undo on photo … by …") in the warning of a slow wait."""
    started = time.monotonic()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Lift.id).where(Lift.event_id == event_id).with_for_update())
    else:
        session.execute(update(Lift).where(Lift.event_id == event_id).values(event_id=Lift.event_id))
    waited = time.monotonic() - started
    if waited >= SLOW_LOCK_S:
        log.warning("labels: %s waited %.1f s for the database's write lock (another writer held it)", what, waited)
    session.expire_all()  # read the photo's label as the other writer left it, not as first loaded


def version(session: Session, event_id: str) -> int:
    """The photo's version: its latest decision's id (0: none). Undo takes back only the latest
    decision, so a version names one state of the photo: the one after that decision."""
    return session.scalar(select(func.max(LabelDecision.id)).where(LabelDecision.event_id == event_id)) or 0


def _unchanged_since(session: Session, event_id: str, seen: int, actor: str) -> None:
    """LabelError (conflict) when someone else changed the photo after the version ``seen``.

    Two annotators on one photo each added the bags the model missed, each add applied to the photo
    as the other left it: every missed bag went twice into the export, and neither was told. The
    actor's own later decisions (still in flight when this one was sent) are no conflict."""
    other = session.scalar(select(LabelDecision).where(LabelDecision.event_id == event_id, LabelDecision.id > seen,
                                                       LabelDecision.annotator != actor)
                           .order_by(LabelDecision.id.desc()).limit(1))
    if other is not None:
        raise LabelError("conflict", f"{other.annotator} changed this photo after you opened it ({other.action} at "
                                     f"{other.at:%H:%M} UTC): look at it again, then decide", "changed",
                         **_who(other))
    if version(session, event_id) < seen:
        raise LabelError("conflict", "a decision on this photo was undone after you opened it: look at it again, "
                                     "then decide", "undone")


def _who(decision: LabelDecision) -> dict[str, str]:
    """Who took a decision, what and when, for the dashboard to word ("bob", "add", an ISO time)."""
    return {"who": decision.annotator, "action": decision.action, "at": decision.at.isoformat()}


def decide(session: Session, lift: Lift, decision: Decision, actor: str, rules: SortingRules) -> None:
    """Apply one decision (or undo the actor's last one on this photo), keep it and audit it; the
    caller checked the photo may be labelled (``labellable``) and commits.

    A refusal is decided by a read first, without the lock: a burst of refused Ctrl+Z (nothing to
    undo, someone else's decision since) each took the write lock, or waited up to the busy timeout
    for it, only to refuse, holding up the other annotators' writes. Checked again under the lock, as
    the photo may have changed in between."""
    _refuse(session, lift, decision, actor, rules)
    lock(session, lift.event_id, f"{decision.action} on photo {lift.event_id} by {actor}")
    if decision.action == "undo":
        _undo(session, lift.event_id, actor)
        return
    if decision.seen is not None:
        _unchanged_since(session, lift.event_id, decision.seen, actor)
    row = session.get(LabelPhoto, lift.event_id)
    before = None if row is None else {"status": row.status, "boxes": row.boxes}
    status, boxes = apply(*current(session, lift, rules)[:2], decision, rules)
    store(session, lift.event_id, status, boxes, actor)
    session.add(LabelDecision(event_id=lift.event_id, at=utcnow(), annotator=actor, action=decision.action,
                              box_id=decision.box_id, before=before))
    detail = f"box={decision.box_id}" if decision.box_id is not None else ""
    if decision.class_ or decision.xyxy:
        detail += f" class={decision.class_} box={decision.xyxy}"
    audit(session, actor, f"labels.{decision.action}", lift.event_id, detail.strip() or None)


def _refuse(session: Session, lift: Lift, decision: Decision, actor: str, rules: SortingRules) -> None:
    """LabelError for a decision the photo as it stands refuses; reads only (``apply`` works on copies)."""
    if decision.action == "undo":
        _undoable(session, lift.event_id, actor)
        return
    if decision.seen is not None:
        _unchanged_since(session, lift.event_id, decision.seen, actor)
    apply(*current(session, lift, rules)[:2], decision, rules)


def _undoable(session: Session, event_id: str, actor: str) -> LabelDecision:
    """The actor's last decision on the photo, when undo may take it back; LabelError otherwise."""
    last = session.scalar(select(LabelDecision).where(LabelDecision.event_id == event_id,
                                                      LabelDecision.annotator == actor)
                          .order_by(LabelDecision.id.desc()).limit(1))
    if last is None:
        raise LabelError("invalid", "nothing to undo: you took no decision on this photo", "nothing_to_undo")
    # Undo puts back the photo as it was before that decision: with someone's decision (or an
    # import) since, theirs would silently go too, and their own undo would then bring back this one.
    latest = session.scalar(select(LabelDecision).where(LabelDecision.event_id == event_id)
                            .order_by(LabelDecision.id.desc()).limit(1))
    if latest is not None and latest.id != last.id:
        raise LabelError("invalid", f"nothing to undo: {latest.annotator} changed this photo after your last "
                                    f"decision ({latest.action} at {latest.at:%H:%M} UTC); undoing yours would "
                                    "undo theirs", "undo_after_other", **_who(latest))
    return last


def _undo(session: Session, event_id: str, actor: str) -> None:
    last = _undoable(session, event_id, actor)
    row = session.get(LabelPhoto, event_id)
    if last.before is None:
        if row is not None:
            session.delete(row)
    else:
        store(session, event_id, last.before["status"], last.before["boxes"], actor)
    session.delete(last)
    audit(session, actor, "labels.undo", event_id, f"{last.action} of {last.at.isoformat()}")


def replace_boxes(session: Session, lift: Lift, boxes: list[dict[str, Any]], actor: str, source: str,
                  rules: SortingRules, relabel_unusable: bool = False) -> bool:
    """An imported labelling (Label Studio, CVAT) replaces the photo's boxes; the model's boxes it
    left out count as deleted. Kept for undo and audited like any decision.

    A photo a person marked unusable stays so (False: nothing changed) unless ``relabel_unusable``:
    the tool's file was often made before that decision, and finishing the photo would put a dark
    or empty hopper back into training. Read under the photo's lock, as an annotator may mark it now."""
    lock(session, lift.event_id, f"import on photo {lift.event_id} by {actor}")
    row = session.get(LabelPhoto, lift.event_id)
    if row is not None and row.status == UNUSABLE and not relabel_unusable:
        return False
    before = None if row is None else {"status": row.status, "boxes": row.boxes}
    deleted = [{**b, "state": DELETED} for b in model_boxes(lift.evidence_detections, rules)
               if not any(_same(b, kept) for kept in boxes)]
    merged = [{**b, "id": i + 1} for i, b in enumerate([*boxes, *deleted])]
    store(session, lift.event_id, DONE, merged, actor)
    session.add(LabelDecision(event_id=lift.event_id, at=utcnow(), annotator=actor, action="import",
                              box_id=None, before=before))
    audit(session, actor, "labels.import", lift.event_id, f"{len(boxes)} boxes from {source}"[:2000])
    return True


def _same(model: dict[str, Any], kept: dict[str, Any]) -> bool:
    return model["class"] == kept["class"] and all(abs(model[k] - kept[k]) < 1e-4 for k in COORDS)


def forget(session: Session, event_ids: list[str]) -> None:
    """Drop the labels of photos that were deleted (retention): without the photo they are worthless."""
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start:start + 500]
        session.execute(delete(LabelDecision).where(LabelDecision.event_id.in_(chunk)))
        session.execute(delete(LabelPhoto).where(LabelPhoto.event_id.in_(chunk)))


def deleted_detections(session: Session, rules: SortingRules) -> list[dict[str, Any]]:
    """Model boxes annotators deleted, one row per photo, in the shape of the false-detections report
    (server.reminders.campaigns): a deleted box is a false detection of the model."""
    rows = []
    query = (select(LabelPhoto, Lift, Evidence.path).join(Lift, Lift.event_id == LabelPhoto.event_id)
             .outerjoin(Evidence, Evidence.event_id == LabelPhoto.event_id).order_by(LabelPhoto.updated_at))
    for label, lift, path in session.execute(query):
        gone = [b for b in label.boxes if b["origin"] == "model" and b["state"] == DELETED]
        if not gone:
            continue
        classes = sorted({b["model_class"] or b["class"] for b in gone})
        spec = rules.spec.classes
        categories = sorted({spec[b["class"]].category for b in gone if b["class"] in spec})
        rows.append({"event_id": lift.event_id, "truck_id": lift.truck_id, "stream": lift.stream,
                     "model_version": f"{lift.model_name}:{lift.model_version}", "classes": ";".join(classes),
                     "categories": ";".join(categories), "evidence_sha256": lift.evidence_sha256,
                     "evidence_path": path, "note": f"annotation: {len(gone)} model box(es) deleted",
                     "reported_by": label.annotator or "", "reported_at": label.updated_at.isoformat(),
                     "item_id": None})
    return rows
