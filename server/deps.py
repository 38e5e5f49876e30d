"""FastAPI dependencies in one place: the database session and the caller's role (``Viewer`` ...).

Routes declare what they need as ``db: SessionDep, who: Manager``. A request is authenticated by
``Authorization: Bearer <token>`` or by the ``trivue_session`` cookie set by ``POST /api/login``;
in dev mode every request is an admin (``trivue server --dev`` warns loudly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker

from server.auth import Principal, session_principal, token_principal
from server.config import ServerSettings

SESSION_COOKIE = "trivue_session"
DEV_PRINCIPAL = Principal("dev", "admin", "dev")


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the routes reach through ``request.app.state.ctx``; built by ``create_app``."""

    settings: ServerSettings
    sessions: sessionmaker[Session]
    metrics: Any  # server.metrics.Metrics
    evidence: Any  # server.evidence.EvidenceStore
    ingest: Any | None  # server.ingest.Ingest, None when ingest is disabled
    publish_config: Callable[[str, dict[str, Any]], None] | None = None


def context(request: Request) -> AppContext:
    return request.app.state.ctx


def get_db(request: Request) -> Iterator[Session]:
    with context(request).sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
ContextDep = Annotated[AppContext, Depends(context)]


def current_principal(request: Request, db: SessionDep) -> Principal:
    if context(request).settings.dev:
        return DEV_PRINCIPAL
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and credentials:
        principal = token_principal(db, credentials.strip())
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = session_principal(db, cookie)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(role: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role or above")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Manager = Annotated[Principal, Depends(require("manager"))]
Admin = Annotated[Principal, Depends(require("admin"))]
