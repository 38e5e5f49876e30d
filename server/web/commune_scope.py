"""Commune-scoped accounts: a mairie's agents see their own communes' streets, figures and photos.

An account may be limited to some communes (``users.communes``, set by ``trivue users add
--communes`` or ``trivue users communes``), named by their codes INSEE as streets store them
(``streets.code_insee``, ``server.streets.insee``). Deny by default: such an account may call only
the routes opened to it on purpose (``open_to_communes`` on the route's function), each of which
filters by the account's communes; ``current_principal`` refuses it every other route with a 403
(``OutOfScope``), so that a route added later stays closed to it until someone opens it. A street,
lift or photo of another commune is a 404, as one that does not exist; so is a street whose code
INSEE nothing said (it is in no commune's scope). docs/api.md lists the open routes, and
tests/security/test_commune_scope_routes.py calls every route of the app with a scoped account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from server.ingest.models import Lift
from server.streets.importer import matching_commune
from server.streets.models import Street
from server.web.auth import Principal

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
MARK = "trivue_open_to_communes"


class OutOfScope(HTTPException):
    """A route not opened to commune-scoped accounts, called by one (French first, as the pages); a
    page answers it as a page (``server.web.site``), with ``who``'s menu."""

    def __init__(self, who: Principal) -> None:
        self.who = who
        codes = ", ".join(who.communes or ()) or "-"
        super().__init__(status.HTTP_403_FORBIDDEN,
                         f"ce compte est limité aux communes {codes} : cette adresse ne lui est pas ouverte "
                         f"(this account is limited to the communes {codes}: this route is not open to it)")


def open_to_communes(endpoint: Endpoint) -> Endpoint:
    """Open a route to commune-scoped accounts: only for a route that filters by ``who.communes``
    (and lists it in docs/api.md's « Commune-scoped accounts »)."""
    setattr(endpoint, MARK, True)
    return endpoint


def opened(endpoint: Any) -> bool:
    return getattr(endpoint, MARK, False) is True


def guard(request: Request, who: Principal) -> None:
    """Refuse a scoped account on a route not opened to it. FastAPI sets ``scope["route"]`` to the
    route being served (its own ``APIRoute``, also through included routers) before its dependencies run."""
    if who.communes is None:
        return
    if not opened(getattr(request.scope.get("route"), "endpoint", None)):
        raise OutOfScope(who)


def scoped_streets(communes: tuple[str, ...]) -> Select[tuple[int]]:
    """The ids of the streets in these communes."""
    return select(Street.id).where(Street.code_insee.in_(communes))


def street_in_scope(db: Session, who: Principal, street_id: int) -> bool:
    if who.communes is None:
        return True
    return db.scalar(scoped_streets(who.communes).where(Street.id == street_id)) is not None


def lift_in_scope(db: Session, who: Principal, event_id: str) -> bool:
    """A lift of a street in the account's communes (a lift matched to no street is in none)."""
    if who.communes is None:
        return True
    street_id = db.scalar(select(Lift.street_id).where(Lift.event_id == event_id))
    return street_id is not None and street_in_scope(db, who, street_id)


def scoped_commune(db: Session, communes: tuple[str, ...], typed: str) -> str:
    """The ``commune=`` filter of a scoped account: one of its communes however typed (as
    ``known_commune`` finds one), or a 422 that names its communes only, never the others."""
    names = list(db.scalars(select(Street.commune).where(Street.code_insee.in_(communes))
                            .distinct().order_by(Street.commune)))
    found = matching_commune(names, typed.strip())
    if found is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=(
            f"commune {typed!r} is not one of this account's communes: {', '.join(names) or 'none has streets yet'}"))
    return found
