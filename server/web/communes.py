"""The ``commune=`` filter of the street routes: a commune found however it is typed, as
``trivue streets list --commune`` and address linking compare communes (case, accents, hyphens,
’ or ', « St- » for « Saint- »: ``commune=cap d'ail`` is ``Cap-d'Ail``), or a 422 naming the
communes with streets, since an empty answer to a typo reads as a commune without lifts."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from server.streets.importer import communes_with_streets, stored_commune
from server.web.commune_scope import scoped_commune

NAMED = 30  # communes named in a refusal; a national deployment has thousands


def known_commune(db: Session, typed: str | None, communes: tuple[str, ...] | None = None) -> str | None:
    """The commune as stored, None for no filter (none given, or blank: the dashboard's « Toutes »);
    for an account limited to ``communes`` (codes INSEE), one of those only (``scoped_commune``)."""
    if typed is None or not typed.strip():
        return None
    if communes is not None:
        return scoped_commune(db, communes, typed)
    found = stored_commune(db, typed.strip())
    if found is not None:
        return found
    known = communes_with_streets(db)
    named = ", ".join(known[:NAMED]) + (f" and {len(known) - NAMED} more" if len(known) > NAMED else "")
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=(
        f"commune {typed!r}: no street is in it; " + (f"the communes with streets: {named}" if known
                                                       else "no streets are imported yet")))
