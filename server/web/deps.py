"""FastAPI dependencies in one place: the database session and the caller's role (``Viewer`` ...).

Routes declare what they need as ``db: SessionDep, who: Manager``. A request is authenticated by
``Authorization: Bearer <token>`` or by the ``trivue_session`` cookie set by ``POST /api/login``;
in dev mode every request is an admin (``trivue server --dev`` warns loudly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from server.config import ServerSettings
from server.ingest.evidence import EvidenceStore
from server.ingest.metrics import Metrics
from server.ingest.subscriber import Ingest
from server.web.auth import Principal, session_principal, token_principal
from server.web.commune_scope import guard
from vision.rules import SortingRules

SESSION_COOKIE = "trivue_session"
DEV_PRINCIPAL = Principal("dev", "admin", "dev")
# The bodies an HTML <form> can send to another site without a CORS preflight.
FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain")


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the routes reach through ``request.app.state.ctx``; built by ``create_app``."""

    settings: ServerSettings
    sessions: sessionmaker[Session]
    metrics: Metrics
    evidence: EvidenceStore
    sorting_rules: SortingRules  # the settings' sorting_rules, loaded once at start-up
    ingest: Ingest | None  # None when ingest is disabled
    publish_config: Callable[[str, dict[str, object]], None] | None = None  # a truck's retained config


def context(request: Request) -> AppContext:
    return request.app.state.ctx


def get_db(request: Request) -> Iterator[Session]:
    with context(request).sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
ContextDep = Annotated[AppContext, Depends(context)]


# Methods that change nothing: a browser sends them cross-site freely (links, images), and they are
# not checked for their origin.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header ("" for blanks: a bearer that fails), else None."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials else None


# The two ways in, declared so that the OpenAPI document marks every signed-in route (its
# ``security``, and then its 401 and 403: ``server.web.rejections``). They only read; the checking
# is current_principal's (a blank bearer fails rather than falling back to the cookie).
BEARER = HTTPBearer(auto_error=False, description="A token from `trivue tokens create`")
SESSION = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="The cookie set by `POST /api/login`")
# For a route that checks its caller itself (``authorize``): the same mark in the document.
SIGNED_IN = [Security(BEARER), Security(SESSION)]


def current_principal(request: Request, db: SessionDep,
                      _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
                      _cookie: Annotated[str | None, Security(SESSION)] = None) -> Principal:
    # Every state-changing call passes the same-origin guard before its caller is looked up: one
    # place, so that no route can forget it (a rollout's confirm and the rollback read no body, and
    # a cross-site form post with an admin's cookie ran them).
    if request.method not in SAFE_METHODS:
        same_origin(request)
    if context(request).settings.dev:
        return DEV_PRINCIPAL
    principal = None
    if (token := bearer_token(request)) is not None:
        principal = token_principal(db, token)
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = session_principal(db, cookie)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required",
                            headers={"WWW-Authenticate": "Bearer"})
    # A mairie's account limited to its communes: only the routes opened to it (deny by default).
    guard(request, principal)
    return principal


def require(role: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role or above")
        return principal

    return check


def authorize(request: Request, db: Session, role: str) -> Principal:
    """``current_principal`` and then ``role``, for a route that checks its caller itself (the alert
    stream, again while it runs): 401 without credentials, 403 below ``role`` (a truck's token)."""
    return require(role)(current_principal(request, db))


Viewer = Annotated[Principal, Depends(require("viewer"))]
Annotator = Annotated[Principal, Depends(require("annotator"))]
Manager = Annotated[Principal, Depends(require("manager"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def same_origin(request: Request) -> None:
    """Refuse a state-changing request that another web site made a signed-in browser send (CSRF).

    The session cookie is SameSite=Lax, but browsers without SameSite support still attach it to a
    cross-site form post. Browsers send ``Origin`` (else ``Referer``) on such posts: it must name
    this server's host (a reverse proxy must pass ``Host`` through). With neither, a form-type
    body authenticated by the cookie is refused too, since a page can strip its Referer; scripts
    and integrators (bearer token, or no form body) are not browsers and pass.
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed:
        host = request.headers.get("host", "").lower()
        if claimed == "null" or urlsplit(claimed).netloc.lower() != host:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"cross-site request refused: origin {claimed[:100]!r} is not this server")
        return
    cookie_only = request.cookies.get(SESSION_COOKIE) and not request.headers.get("authorization")
    if cookie_only and content_type(request) in FORM_CONTENT_TYPES:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "cross-site request refused: a form post with the session cookie needs an Origin header")


SameOrigin = Depends(same_origin)
