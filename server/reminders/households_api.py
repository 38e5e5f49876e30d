"""``/api/reminders/households/...``: households' contacts and rights (managers and admins, audited).

Contacts are personal data kept apart from lift data (``server.households``); reading them,
importing them, an opt-out and an erasure each leave an entry in the audit log. Reading and
importing contacts, listing the oppositions need the household level (``server.privacy``); an opt-out,
its lifting (opt-in) or an erasure is a person's request and is honoured whatever the switch says.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from server.config import ServerSettings
from server.reminders import schemas
from server.reminders.access import access_text, household_access
from server.reminders.households import (
    HouseholdError,
    NoOpposition,
    UnknownHousehold,
    erase_household,
    held_unsaid,
    import_contacts,
    known_household,
    list_contacts,
    list_opt_outs,
    opt_in,
    opt_out,
    opted_in,
    unknown_note,
)
from server.web.auth import Principal
from server.web.deps import Admin, Manager, SameOrigin, SessionDep, content_type
from server.web.privacy import require

IMPORT_TYPES = ("text/csv", "application/json", "multipart/form-data")
JSON_SHAPE = 'JSON attendu : {"csv": "key,name,email,phone,postal_address\\n..."}'
# What import_type and contacts_csv read, as the OpenAPI document shows it (the route reads the request itself).
IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object", "required": ["csv"], "properties": {"csv": {"type": "string"}}}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


def import_type(request: Request) -> str:
    """``text/csv`` (the dashboard, ``curl --data-binary``), JSON ``{"csv": "..."}`` or a multipart
    upload's ``file`` field. ``text/plain`` and URL-encoded forms are refused: those are what a
    cross-site form sends, and nothing of ours needs them."""
    kind = content_type(request)
    if kind not in IMPORT_TYPES:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"envoyez les contacts en {', '.join(IMPORT_TYPES)}, pas {kind or 'sans type'!r}")
    return kind


async def contacts_csv(request: Request, kind: str) -> bytes | str:
    """The CSV file (bytes: its encoding is detected) of an import whose content type ``import_type`` accepted."""
    if kind == "text/csv":
        return await request.body()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(422, JSON_SHAPE) from None
        if not isinstance(body, dict) or not isinstance(body.get("csv"), str):
            raise HTTPException(422, JSON_SHAPE)
        return body["csv"].removeprefix("\ufeff")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "fichier CSV attendu dans le champ multipart « file »")
    return await upload.read()


def may_say_held(settings: ServerSettings, who: Principal) -> bool:
    """Whether an answer may say what Trivue holds on a key (registry, lifts): with the household level
    on, or to an admin (who reads the access file anyway). A manager with it off would otherwise test
    tags and addresses one by one through the opt-out's ``known`` or an empty erasure's lift count."""
    return settings.household_level or who.can("admin")


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


class OptInIn(OptOutIn):
    """The household's request to receive reminders again (or the mistyped key's correction): its reference."""


def household_routes(router: APIRouter, settings: ServerSettings, min_confidence: float) -> None:
    """``min_confidence``: the reminders' ``household.min_address_confidence`` (the access file's lifts)."""
    @router.get("/households", summary="Contacts (personal data; the read is audited)",
                response_model=list[schemas.ContactOut], responses={409: {"description": "Household level off"}})
    def households(db: SessionDep, who: Manager) -> list[dict[str, Any]]:
        require(settings, "Les contacts des foyers ne sont pas consultables")
        rows = list_contacts(db, who.actor)
        db.commit()
        return rows

    @router.post("/households/import", summary="Upsert contacts from CSV: key,name,email,phone,postal_address",
                 dependencies=[SameOrigin], response_model=schemas.ContactImportOut, openapi_extra=IMPORT_BODY,
                 responses={409: {"description": "Household level off"}, 415: {"description": "Not one of " +
                            ", ".join(IMPORT_TYPES)}, 422: {"description": "A row or the JSON shape refused"}})
    async def import_households(request: Request, db: SessionDep, who: Manager) -> dict[str, Any]:
        # After the same-origin and content-type checks (a forged request learns nothing), before the body.
        kind = import_type(request)
        require(settings, "L'import des contacts des foyers est refusé")
        text = await contacts_csv(request, kind)
        try:
            report = import_contacts(db, text, who.actor, "api")
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return report.json()

    @router.post("/households/{key}/opt-out", summary="The household asked for no more reminders",
                 response_model=schemas.OptedOut)
    def household_opt_out(key: str, body: OptOutIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        try:
            key = opt_out(db, key, who.actor, body.note)
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        if not may_say_held(settings, who):
            db.commit()
            return {"key": key, "opted_out": True, "known": None, "detail": held_unsaid(key)}
        known = known_household(db, key)
        db.commit()
        return {"key": key, "opted_out": True, "known": known, "detail": None if known else unknown_note(key)}

    @router.post("/households/{key}/opt-in", summary="Lift the household's opposition: reminders again from the "
                 "next campaign plan", response_model=schemas.OptedIn,
                 responses={404: {"description": "No opposition recorded for this key"},
                            422: {"description": "Not a household key, or an unknown field"}})
    def household_opt_in(key: str, body: OptInIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        # Says whether an opposition is recorded under the key, never what Trivue holds on it
        # (``may_say_held``): oppositions are what managers themselves record, lifts and registry are not.
        try:
            key = opt_in(db, key, who.actor, body.note)
        except NoOpposition as error:
            raise HTTPException(404, str(error)) from None
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return {"key": key, "opted_out": False, "detail": opted_in(key)}

    @router.get("/households/opt-outs", summary="The oppositions recorded (household level; the read is audited)",
                response_model=list[schemas.OptOutRow], responses={409: {"description": "Household level off"}})
    def households_opt_outs(db: SessionDep, who: Manager) -> list[dict[str, Any]]:
        # Keys and the requests' notes name households: household-level data, as the contacts.
        require(settings, "Les oppositions des foyers ne sont pas consultables")
        rows = list_opt_outs(db, who.actor)
        db.commit()
        return rows

    @router.get("/households/{key}/access", summary="Everything held about the household (right of access, admins)",
                response_model=schemas.HouseholdAccess,
                responses={200: {"content": {"text/plain": {}}, "description": "JSON, or text with format=text"}})
    def household_access_route(key: str, db: SessionDep, who: Admin,
                               format: str = Query(default="json", pattern="^(json|text)$")) -> Any:
        try:
            report = household_access(db, key, who.actor, settings.zone, min_confidence)
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        if format == "text":
            return PlainTextResponse(access_text(report), headers={
                "Content-Disposition": 'attachment; filename="donnees-foyer.txt"'})
        return report

    @router.delete("/households/{key}", summary="Erase the household's personal data (right to erasure)",
                   response_model=schemas.Erased)
    def household_erase(key: str, db: SessionDep, who: Manager, keep_opt_out: bool = True,
                        note: str | None = Query(default=None, max_length=500)) -> dict[str, Any]:
        try:
            done = erase_household(db, key, who.actor, keep_opt_out, note, settings.data_dir / "reminders")
        except UnknownHousehold as error:
            said = str(error) if may_say_held(settings, who) else f"rien à effacer : {held_unsaid(key)}"
            raise HTTPException(404, said) from None
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return {"key": key, **done}
