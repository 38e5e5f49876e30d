"""``/api/lifts/{event_id}/overrule``: a manager judges the truck wrong (POST) or takes that back (DELETE).

The waste department's tool for a household's "my bin was not contaminated" (GDPR art. 16 and 22)
and for a reviewer's plainly wrong detection: ``server.ingest.overrule`` counts the lift clean in
every figure, exactly once. Both answer the lift as ``GET /api/lifts/{event_id}`` does; the same-origin
guard runs in ``current_principal`` before the caller is looked up. The audit trail gets ids and
counts, never the reason (free text).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import audit
from server.config import ServerSettings
from server.db import utcnow
from server.ingest.models import Lift
from server.ingest.overrule import overrule, undo_overrule
from server.web import schemas
from server.web.deps import ContextDep, Manager, SessionDep
from server.web.drilldown import lift_detail
from server.web.privacy import street_level_lift


def _known(db: Session, event_id: str) -> None:
    if db.scalar(select(Lift.id).where(Lift.event_id == event_id).limit(1)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lift {event_id}")


def _require_judged(db: Session, event_id: str) -> None:
    # Overruling counts a lift clean in every figure; a lift the camera could not see counts in none.
    problem = db.scalar(select(Lift.view_unusable).where(Lift.event_id == event_id).limit(1))
    if problem is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"lift {event_id} was not judged (camera view "
                            f"unusable: {problem}): it counts in no figure, there is nothing to overrule")


def _answer(db: Session, settings: ServerSettings, event_id: str) -> dict[str, Any]:
    """The lift as ``GET /api/lifts/{event_id}`` gives it (street level while households are off)."""
    detail = lift_detail(db, event_id)
    if detail is None:  # deleted by the retention purge in between
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lift {event_id}")
    return detail if settings.household_level else street_level_lift(detail)


def overrule_router() -> APIRouter:
    router = APIRouter(prefix="/api/lifts", tags=["lifts"])

    @router.post("/{event_id}/overrule", summary="Judge the truck wrong: the lift counts as clean (manager)",
                 response_model=schemas.Lift)
    def overrule_lift(event_id: uuid.UUID, body: schemas.OverruleIn, db: SessionDep, ctx: ContextDep,
                      who: Manager) -> dict[str, Any]:
        _known(db, str(event_id))
        _require_judged(db, str(event_id))
        change = overrule(db, str(event_id), who.actor, body.reason, utcnow())
        if change.changed:  # a second overrule changes nothing, and is no act to record
            audit(db, who.actor, "lift.overrule", str(event_id), change.audit_detail())
        db.commit()
        return _answer(db, ctx.settings, str(event_id))

    @router.delete("/{event_id}/overrule", summary="Undo an overrule: the truck's judgement counts again (manager)",
                   response_model=schemas.Lift)
    def undo(event_id: uuid.UUID, db: SessionDep, ctx: ContextDep, who: Manager) -> dict[str, Any]:
        _known(db, str(event_id))
        change = undo_overrule(db, str(event_id), utcnow())
        if change.changed:
            audit(db, who.actor, "lift.overrule_undo", str(event_id), change.audit_detail())
        db.commit()
        return _answer(db, ctx.settings, str(event_id))

    return router
