"""``/api/reminders/households/...``: households' contacts and rights (managers and admins, audited).

Contacts are personal data kept apart from lift data (``server.households``); reading them,
importing them, an opt-out and an erasure each leave an entry in the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from server.deps import Manager, SessionDep
from server.households import HouseholdError, erase_household, import_contacts, list_contacts, opt_out


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


def household_routes(router: APIRouter) -> None:
    @router.get("/households", summary="Contacts (personal data; the read is audited)")
    def households(db: SessionDep, who: Manager) -> list[dict[str, Any]]:
        rows = list_contacts(db, who.actor)
        db.commit()
        return rows

    @router.post("/households/import", summary="Upsert contacts from CSV: key,name,email,phone,postal_address")
    async def import_households(request: Request, db: SessionDep, who: Manager) -> dict[str, Any]:
        text = (await request.body()).decode("utf-8-sig", "replace")
        try:
            report = import_contacts(db, text, who.actor, "api")
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return {"imported": report.imported, "errors": list(report.errors)}

    @router.post("/households/{key}/opt-out", summary="The household asked for no more reminders")
    def household_opt_out(key: str, body: OptOutIn, db: SessionDep, who: Manager) -> dict[str, Any]:
        try:
            opt_out(db, key, who.actor, body.note)
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return {"key": key, "opted_out": True}

    @router.delete("/households/{key}", summary="Erase the household's personal data (right to erasure)")
    def household_erase(key: str, db: SessionDep, who: Manager, keep_opt_out: bool = True) -> dict[str, Any]:
        try:
            done = erase_household(db, key, who.actor, keep_opt_out)
        except HouseholdError as error:
            raise HTTPException(422, str(error)) from None
        db.commit()
        return {"key": key, **done}
