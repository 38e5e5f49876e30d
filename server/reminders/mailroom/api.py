"""``/api/reminders/campaigns/{id}/letters[.pdf]``: the mail room's print run (``.print_run``).

The same rules as a letter's own file (``/files/{name}``): managers and admins, refused while the
household level is off (every letter names a household), the download audited as
``reminders.file.export``, the letters marked printed (``only_new``: only those never printed). The
PDF is streamed as it is joined: a 5,000-letter file (a gigabyte) never sits in the server's memory,
and the first bytes leave at once, before any proxy's timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from server.audit import audit
from server.config import ServerSettings
from server.reminders import schemas
from server.reminders.campaigns import CampaignError, NotFound, get_campaign
from server.reminders.mailroom.print_run import PrintRun, mark_printed, print_run
from server.web.bounds import RowId
from server.web.deps import Manager, SessionDep
from server.web.privacy import require

RectoVerso = Query(default=True, description="the printer prints both sides: a blank back after a letter of "
                                             "odd pages, so that each letter starts a sheet")


OnlyNew = Query(default=False, description="only the letters never put in a print file before")


def print_routes(router: APIRouter, settings: ServerSettings, out_root: Path) -> None:
    def run(db: Any, campaign_id: int, recto_verso: bool, only_new: bool) -> PrintRun:
        try:
            get_campaign(db, campaign_id)
        except CampaignError as error:
            raise HTTPException(404 if isinstance(error, NotFound) else 422, str(error)) from None
        require(settings, "Les courriers nomment des foyers")
        return print_run(db, campaign_id, out_root / f"campagne-{campaign_id}", recto_verso, only_new)

    @router.get("/campaigns/{campaign_id}/letters", response_model=schemas.PrintRunOut,
                summary="The print run's count: letters, pages, sheets, per commune, and those left out",
                responses=schemas.HOUSEHOLD_OFF)
    def letters(campaign_id: RowId, db: SessionDep, who: Manager, recto_verso: bool = RectoVerso,
                only_new: bool = OnlyNew) -> dict[str, Any]:
        return run(db, campaign_id, recto_verso, only_new).summary()

    @router.get("/campaigns/{campaign_id}/letters.pdf", response_class=StreamingResponse,
                summary="The campaign's letters as one PDF, by commune, postcode, street and number",
                responses={200: {"content": {"application/pdf": {}}}, **schemas.HOUSEHOLD_OFF})
    def letters_pdf(campaign_id: RowId, db: SessionDep, who: Manager,
                    recto_verso: bool = RectoVerso, only_new: bool = OnlyNew) -> StreamingResponse:
        found = run(db, campaign_id, recto_verso, only_new)
        if not found.letters:
            raise HTTPException(404, f"campagne {campaign_id} : aucun courrier à imprimer"
                                + (f" ({len(found.left_out)} écarté(s))" if found.left_out else "")
                                + (f" ({found.already_printed} déjà imprimé(s))" if found.already_printed else ""))
        audit(db, who.actor, "reminders.file.export", f"campaign:{campaign_id}",
              f"{found.file_name}: {len(found.letters)} letters, {found.pages} pages")
        mark_printed(db, found, who.actor)  # when the file is handed out: a broken download is printed again whole
        db.commit()
        return StreamingResponse(found.pdf(), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{found.file_name}"',
            "X-Letters": str(len(found.letters)), "X-Pages": str(found.pages + found.blank_pages)})
