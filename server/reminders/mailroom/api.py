"""``/api/reminders/campaigns/{id}/letters[.pdf]``: the mail room's print run (``.print_run``).

The same rules as a letter's own file (``/files/{name}``): managers and admins, refused while the
household level is off (every letter names a household), the download audited as
``reminders.file.export`` when it starts (the letters leave the server), the letters marked printed
(``only_new``: only those never printed) when it ends. The PDF is streamed as it is joined: a
5,000-letter file (a gigabyte) never sits in the server's memory, and the first bytes leave at once,
before any proxy's timeout.

Marked at the end, not the start: a download that breaks (the client gone, a letter that fails to
join) would otherwise leave letters marked printed that the mail room never got, and "new only" would
leave them out for good. The marking runs in the streamed body, after its last piece was handed to
the server: Starlette asks for the next piece only once the previous one is sent, and on a client's
disconnect it cancels the stream without asking again (a ``BackgroundTask`` would not do: Starlette
runs it after a disconnect too). What the server cannot see is a connection that breaks after its
last bytes were written; the count's « Tout réimprimer » is there for that, as for a jammed printer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from server.audit import audit
from server.config import ServerSettings
from server.reminders import schemas
from server.reminders.campaigns import CampaignError, NotFound, get_campaign
from server.reminders.mailroom.print_run import PrintRun, mark_printed, print_run
from server.reminders.phrases import plural
from server.web.bounds import RowId
from server.web.deps import ContextDep, Manager, SessionDep
from server.web.privacy import require

RectoVerso = Query(default=True, description="the printer prints both sides: a blank back after a letter of "
                                             "odd pages, so that each letter starts a sheet")


OnlyNew = Query(default=False, description="only the letters never put in a print file before")


def handed_out(run: PrintRun, sessions: sessionmaker[Session], actor: str) -> Iterator[bytes]:
    """The print file in pieces, then its letters marked printed: reached only once the last piece
    is sent (see the module docstring); a failure or a disconnect before leaves them as they were."""
    yield from run.pdf()
    with sessions() as session:  # the request's own session may be closed by now
        mark_printed(session, run, actor)
        session.commit()


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
    def letters_pdf(campaign_id: RowId, db: SessionDep, who: Manager, ctx: ContextDep,
                    recto_verso: bool = RectoVerso, only_new: bool = OnlyNew) -> StreamingResponse:
        found = run(db, campaign_id, recto_verso, only_new)
        if not found.letters:
            left, printed = len(found.left_out), found.already_printed
            raise HTTPException(404, f"campagne {campaign_id} : aucun courrier à imprimer"
                                + (f" ({left} {plural(left, 'écarté', 'écartés')})" if left else "")
                                + (f" ({printed} déjà {plural(printed, 'imprimé', 'imprimés')})" if printed else ""))
        audit(db, who.actor, "reminders.file.export", f"campaign:{campaign_id}",
              f"{found.file_name}: {len(found.letters)} letters, {found.pages} pages")
        db.commit()
        return StreamingResponse(handed_out(found, ctx.sessions, who.actor), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{found.file_name}"',
            "X-Letters": str(len(found.letters)), "X-Pages": str(found.pages + found.blank_pages)})
