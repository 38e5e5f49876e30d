"""The fleet's HTTP API: truck configuration, published models, their downloads, rollouts and rollback.

Admins change things; every signed-in role may look at models and rollouts (the fleet page). A
truck's token (``trivue tokens create --role truck --truck-id ID``) may download the models that truck
is asked to run and read its own configuration, nothing else.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from base.ids import ID_MAX_LENGTH, TRUCK_ID_PATTERN
from server.audit import audit
from server.db import utcnow
from server.fleet import schemas
from server.fleet.config_change import changes, kept_settings, refusal
from server.fleet.locks import locked_truck
from server.fleet.models import Assignment, FleetModel, Rollout
from server.fleet.registry import RegistryError, find, model_json, model_path, model_ref
from server.fleet.rollout import (
    RolloutError,
    assign,
    assignment_ref,
    config_version,
    confirm,
    publish_pending,
    rollback,
    start,
)
from server.fleet.stall import rollout_view
from server.ingest.models import Truck
from server.ingest.streams import collected_streams, not_collected, unknown_config_stream
from server.web.accounts import TRUCK_ROLE
from server.web.auth import Principal
from server.web.deps import Admin, AppContext, ContextDep, SessionDep, Viewer, current_principal
from server.web.schemas import TruckConfig

TruckIdPath = Annotated[str, Path(max_length=ID_MAX_LENGTH, pattern=TRUCK_ID_PATTERN)]
ShaPath = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")]
Caller = Annotated[Principal, Depends(current_principal)]


def _model(db: Session, sha: str) -> FleetModel:
    try:
        return find(db, sha)
    except RegistryError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


def _asked(db: Session, truck_id: str | None) -> set[str]:
    """The models a truck may download: the one it is asked to run, its FP32 reference (the INT8
    self-check) and the one it ran before (a rollback to a file it lost). A stolen truck token then
    reaches no candidate model published but not rolled out to that truck."""
    assigned = db.get(Assignment, truck_id) if truck_id else None
    if assigned is None:
        return set()
    return {s for s in (assigned.sha256, assigned.reference_sha256, assigned.previous_sha256) if s}


def _publish_now(db: Session, ctx: AppContext) -> None:
    """Commit, then publish pending configs now when a broker is there; else ``RolloutTask`` will."""
    db.commit()  # first: a truck downloads its model as soon as it reads its config
    if ctx.publish_config is not None:
        publish_pending(db, ctx.publish_config)


def fleet_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["fleet"])
    _config_routes(router)
    _model_routes(router)
    _rollout_routes(router)
    return router


def _config_routes(router: APIRouter) -> None:
    @router.put("/trucks/{truck_id}/config", summary="Set a truck's stream, thresholds or model; published retained",
                response_model=schemas.TruckConfigAnswer, responses={
                    202: {"model": schemas.TruckConfigAnswer,
                          "description": "Stored, with a model; the broker did not take it: published once it does "
                                         "(within rollout_check_s)"},
                    422: {"description": "A stream the server's sorting rules do not collect (its lifts would be "
                                         "unknown_stream dead letters), set or kept from the stored config, "
                                         "or a bad value: nothing stored"},
                    503: {"description": "No broker to publish to, or (a config without a model) it did not take "
                                         "it: nothing stored"}})
    def put_config(truck_id: TruckIdPath, body: schemas.TruckConfigIn, db: SessionDep, ctx: ContextDep,
                   who: Admin, response: Response) -> dict[str, Any]:
        publish = ctx.publish_config
        collected = collected_streams(ctx.settings, ctx.sorting_rules.streams)
        if body.stream is not None and (unknown := unknown_config_stream(str(body.stream), collected)) is not None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown)
        if publish is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "ingest is disabled: no broker to publish")
        truck = locked_truck(db, truck_id)  # first: what follows reads what the last change committed
        # A stream stored before the rules dropped it would ride along in every later config: the
        # change must set or reset it.
        stored = (truck.config or {}).get("stream")
        if stored is not None and body.stream is None and "stream" not in body.reset and stored not in collected:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"this truck's stored stream: {not_collected(str(stored), collected)}: set another "
                                "stream or reset it (reset: [\"stream\"]) with this change")
        if body.model is not None:
            assign(db, truck_id, model_ref(db, _model(db, body.model)), who.actor)
        # The retained message is all a rebooted or long-offline truck receives: it carries every
        # setting changed so far (as publish_pending does), not only this request's.
        # ``reset`` removes a setting: a setting absent is one the server no longer sets, and the truck
        # runs its own settings file's value again as soon as it reads this config (stream: next lift).
        before, kept = dict(truck.config or {}), kept_settings(truck.config, body.reset)
        changed = body.model_dump(mode="json", exclude_none=True, exclude={"model", "reset"})
        config: dict[str, Any] = {"config_version": config_version(utcnow()), **kept, **changed}
        said = refusal(truck)  # carried over from a config the truck refused: said, and undone by reset
        carried = sorted(k for k in kept if k not in changed) if said is not None else []
        refused = {**said, "carried": carried} if said is not None and carried else None
        assigned = db.get(Assignment, truck_id)
        audit(db, who.actor, "truck.config", truck_id, changes(
            before, config if assigned is None else {**config, "model": assignment_ref(assigned)}))
        if assigned is None:
            # No model in it: nothing the truck does reads this change, and nothing would publish it
            # later (only assignments wait to be published), so it is published under the row lock
            # and stored once published, or refused with nothing stored.
            try:
                publish(truck_id, config)
            except ConnectionError as error:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
            truck.config = config
            db.commit()
            return {**config, "refused": refused}
        # With a model (it stays whatever else changes): stored and committed first, pending, then
        # published, since the truck downloads the model as soon as it reads the config. A broker
        # that does not take it leaves it pending: the rollout task publishes it once it does.
        truck.config, assigned.published_at = {**config, "model": assignment_ref(assigned)}, None
        publish_pending(db, publish, truck_id)  # commits first
        pending = db.get(Assignment, truck_id, populate_existing=True)
        if pending is not None and pending.published_at is None:
            response.status_code = status.HTTP_202_ACCEPTED
        stored = db.get(Truck, truck_id, populate_existing=True)
        assert stored is not None and stored.config is not None  # committed above
        return {**stored.config, "refused": refused}

    @router.get("/trucks/{truck_id}/config", summary="A truck's config as last published (admin, or that truck)",
                response_model=TruckConfig)
    def get_config(truck_id: TruckIdPath, db: SessionDep, who: Caller) -> dict[str, Any]:
        if not (who.can("admin") or (who.role == TRUCK_ROLE and who.truck_id == truck_id)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin role, or the truck's own token")
        truck = db.get(Truck, truck_id)
        if truck is None or truck.config is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no config published for truck {truck_id}")
        return truck.config


def _model_routes(router: APIRouter) -> None:
    @router.get("/models", summary="Published models, newest first", response_model=schemas.ModelList)
    def models(db: SessionDep, who: Viewer) -> dict[str, Any]:
        rows = db.scalars(select(FleetModel).order_by(FleetModel.published_at.desc()))
        return {"models": [model_json(row) for row in rows]}

    # Declared before /models/{sha}: "<sha>.onnx" would match that route too.
    @router.get("/models/{sha}.onnx", summary="Download a model (a truck's token, or admin)",
                response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}})
    def download(sha: ShaPath, db: SessionDep, ctx: ContextDep, who: Caller) -> FileResponse:
        if not (who.role == TRUCK_ROLE or who.can("admin")):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs a truck's token or the admin role")
        if len(sha) != 64:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no published model with sha256 {sha} (64 hex characters)")
        row = _model(db, sha)
        if not who.can("admin") and row.sha256 not in _asked(db, who.truck_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"truck {who.truck_id} was not asked to run model "
                                f"{row.sha256[:12]} (its assignment names the models it may download)")
        path = model_path(ctx.settings.data_dir, row.sha256)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"the file of model {sha} is missing on the server")
        audit(db, who.actor, "model.download", row.sha256, f"{row.name} {row.version}")
        db.commit()
        return FileResponse(path, media_type="application/octet-stream", filename=f"{row.name}-{row.version}.onnx")

    @router.get("/models/{sha}", summary="One published model with its card", response_model=schemas.Model)
    def model(sha: ShaPath, db: SessionDep, who: Viewer) -> dict[str, Any]:
        return model_json(_model(db, sha), card=True)


def _rollout_routes(router: APIRouter) -> None:
    @router.post("/models/{sha}/rollout", summary="Roll a model out: canary trucks first (admin)",
                 response_model=schemas.Rollout)
    def rollout(sha: ShaPath, body: schemas.RolloutIn, db: SessionDep, ctx: ContextDep, who: Admin) -> dict[str, Any]:
        _model(db, sha)  # 404 for no such model, as GET /api/models/{sha}; 422 is for a refused rollout
        try:
            row = start(db, ctx.settings, sha, body.canary, who.actor, body.canary_lifts)
        except RolloutError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        _publish_now(db, ctx)
        return rollout_view(db, ctx.settings, row)

    @router.post("/models/{sha}/confirm", summary="The rest of the fleet follows the canaries now (admin)",
                 response_model=schemas.Rollout)
    def confirm_rollout(sha: ShaPath, db: SessionDep, ctx: ContextDep, who: Admin) -> dict[str, Any]:
        _model(db, sha)
        try:
            row = confirm(db, ctx.settings, sha, who.actor)
        except RolloutError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        _publish_now(db, ctx)
        return rollout_view(db, ctx.settings, row)

    @router.post("/rollouts/rollback", summary="Put the previous model back on the latest rollout's trucks (admin)",
                 response_model=schemas.Rollback, responses={422: {"description": "Nothing to roll back, or "
                                                                                 "nothing to roll back to"}})
    def roll_back(db: SessionDep, ctx: ContextDep, who: Admin) -> dict[str, Any]:
        try:
            row, unknown = rollback(db, who.actor)
        except RolloutError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        _publish_now(db, ctx)
        return {"rollout": rollout_view(db, ctx.settings, row), "unknown_previous": unknown}

    @router.get("/rollouts", summary="Rollouts, newest first, with the canaries' progress",
                response_model=schemas.RolloutList)
    def rollouts(db: SessionDep, ctx: ContextDep, who: Viewer) -> dict[str, Any]:
        rows = db.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(20))
        return {"rollouts": [rollout_view(db, ctx.settings, row) for row in rows]}
