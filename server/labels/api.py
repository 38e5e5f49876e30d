"""``/api/labels/...``: the labelling queue, one photo with its boxes, decisions (annotator role and up).

An annotator reaches the blurred photo, its boxes, its truck and day, nothing else of the lift
(no address, bin or position); every photo shown and every decision is in the audit log.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse, JSONResponse

from server.audit import audit
from server.labels import schemas
from server.labels.queue import QueueFilter, photo_view, queue
from server.labels.store import Decision, LabelError, decide, labellable, taxonomy
from server.web.bounds import Day, ordered
from server.web.deps import Annotator, ContextDep, SameOrigin, SessionDep
from server.web.private import private_get
from vision.rules import SortingRules

STATUS = {"not_found": 404, "expired": 410, "invalid": 422, "conflict": 409}
CODED = {"model": schemas.LabelRefusal}
EXPIRED = {410: {"description": "The photo is past its retention date: it can no longer be labelled", **CODED}}
CHANGED = {409: {"description": "Someone else changed the photo after the version the decision names", **CODED}}


def _fail(error: LabelError) -> JSONResponse:
    """The refusal with its code and parameters beside the English sentence: the Annotation page words
    it in the reader's language (it showed "nothing to undo: ..." on a French page)."""
    body = {"detail": str(error), "code": error.reason, "params": error.params}
    return JSONResponse(body, status_code=STATUS[error.kind])


def labels_router(rules: SortingRules) -> APIRouter:
    """The labelling routes; ``rules`` are the server's sorting rules (``sorting_rules``): their classes
    are the taxonomy, the same the trucks judge by."""
    router = APIRouter(prefix="/api/labels", tags=["labels"])

    @router.get("/classes", summary="The classes a box may have (the rules' taxonomy)",
                response_model=list[schemas.ClassOut])
    def classes(who: Annotator) -> list[dict[str, str]]:
        spec = rules.spec.classes
        return [{"name": name, "label": spec[name].label, "category": spec[name].category}
                for name in taxonomy(rules)]

    @router.get("/queue", summary="Photos to label, in collection order, with the progress count",
                response_model=schemas.Queue)
    def photo_queue(db: SessionDep, ctx: ContextDep, who: Annotator, reason: schemas.Reason | None = None,
                    class_: str | None = Query(default=None, alias="class", max_length=64),
                    truck_id: str | None = Query(default=None, max_length=64), since: Day | None = None,
                    until: Day | None = None, status: schemas.Status | None = None) -> dict[str, Any]:
        ordered(since, until)
        return queue(db, QueueFilter(reason, class_, truck_id, since, until, status), rules,
                     ctx.settings.evidence_retention_days, ctx.settings.retention_days, who.actor)

    @router.get("/photos/{event_id}", summary="One photo with its boxes as they stand", response_model=schemas.Photo,
                responses=EXPIRED)
    def photo(event_id: uuid.UUID, db: SessionDep, ctx: ContextDep, who: Annotator) -> dict[str, Any] | JSONResponse:
        try:
            lift, evidence = labellable(db, str(event_id), ctx.settings.evidence_retention_days,
                                        ctx.settings.retention_days)
        except LabelError as error:
            return _fail(error)
        return photo_view(db, ctx.settings, lift, evidence, rules)

    @private_get(router, "/photos/{event_id}/photo.jpg", summary="The blurred photo (annotator)",
                 response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
    def photo_file(event_id: uuid.UUID, db: SessionDep, ctx: ContextDep, who: Annotator) -> Response:
        try:
            _lift, evidence = labellable(db, str(event_id), ctx.settings.evidence_retention_days,
                                         ctx.settings.retention_days)
        except LabelError as error:
            return _fail(error)
        path = ctx.evidence.path(evidence.path)
        if not path.is_file():
            raise HTTPException(404, f"no photo file for lift {event_id}")
        audit(db, who.actor, "evidence.read", str(event_id), "labelling")
        db.commit()
        # A household's bin on an annotator's (often shared) office computer: no browser or proxy keeps
        # it (private_get), as the evidence route; each view is audited, a cached copy would not be.
        return FileResponse(path, media_type="image/jpeg")

    @router.post("/photos/{event_id}/decisions", summary="Accept, delete, move, add, unusable, done or undo",
                 response_model=schemas.Photo, dependencies=[SameOrigin], responses={**CHANGED, **EXPIRED})
    def decision(event_id: uuid.UUID, body: schemas.DecisionIn, db: SessionDep, ctx: ContextDep,
                 who: Annotator) -> dict[str, Any] | JSONResponse:
        try:
            lift, evidence = labellable(db, str(event_id), ctx.settings.evidence_retention_days,
                                        ctx.settings.retention_days)
            decide(db, lift, Decision(body.action, body.box_id, body.class_, body.xyxy(), body.version), who.actor,
                   rules)
        except LabelError as error:
            db.rollback()
            return _fail(error)
        db.commit()
        return photo_view(db, ctx.settings, lift, evidence, rules)

    return router

