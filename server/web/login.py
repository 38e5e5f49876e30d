"""Browser login: ``POST /api/login`` sets the session cookie, ``POST /api/logout`` ends it.

The cookie is HttpOnly (scripts cannot read it), SameSite=Lax (other sites cannot post with it)
and Secure unless ``cookie_secure`` is off, the server runs in dev mode, or the caller is a script
on plain http (``secure_cookie``: its cookie jar would keep a Secure cookie and never send it back).

A browser keeps a Secure cookie only from a secure context: an https:// page, or one of this very
machine (localhost, 127.0.0.1, ::1). A pilot reached at http://192.168.1.20:8000/ from another PC
therefore lost every login without a word (back to the login page). The login now refuses such a
browser, saying why and what to do, and ``trivue server`` warns when it listens where that happens
and no TLS proxy on another machine is trusted (``FORWARDED_ALLOW_IPS``, read by uvicorn too).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from server.audit import audit
from server.config import ServerSettings
from server.web.accounts import User
from server.web.auth import MAX_PASSWORD_LENGTH, check_password, close_session, open_session
from server.web.deps import SESSION_COOKIE, ContextDep, SameOrigin, SessionDep
from server.web.schemas import Done, LoggedIn
from server.web.throttle import LoginThrottle, Refusal

log = logging.getLogger(__name__)

# The start of the refusal's detail: what the login page (login.js) recognises.
PLAIN_HTTP_REFUSAL = "session cookie not kept over plain HTTP"
WHAT_TO_DO = ("open the dashboard at its https:// address (a TLS reverse proxy, docs/deployment.md), or, for a "
              "pilot on a local network only, set cookie_secure: false (TRIVUE_COOKIE_SECURE=false), knowing "
              "that passwords and session cookies then cross that network in clear")
# uvicorn's own default when FORWARDED_ALLOW_IPS is unset: X-Forwarded-Proto is believed from these only.
UVICORN_TRUSTED_PROXIES = "127.0.0.1,::1"


def loopback_host(host: str) -> bool:
    """``host`` names this machine only, as browsers judge a secure context on plain http:
    localhost, ``*.localhost``, 127.0.0.0/8, ::1 (a URL's host, bracketed or not)."""
    name = host.strip().removeprefix("[").removesuffix("]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _listens_on_loopback(host: str) -> bool:
    """The listen address reaches this machine only (a name such as Debian's own host name, 127.0.1.1,
    included); 0.0.0.0 and :: are every interface."""
    if loopback_host(host):
        return True
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False  # trivue server stops on it anyway, naming the host
    return bool(found) and all(loopback_host(str(address)) for address in found)


def trusts_a_remote_proxy(forwarded_allow_ips: str) -> bool:
    """``FORWARDED_ALLOW_IPS`` (uvicorn's list of the proxies whose ``X-Forwarded-Proto`` it believes)
    names a machine other than this one: a TLS reverse proxy there, whose users are on https://."""
    for entry in (part.strip() for part in forwarded_allow_ips.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not loopback_host(entry):
                return True
            continue
        if not (network.network_address.is_loopback and network.broadcast_address.is_loopback):
            return True
    return False


def plain_http_warning(settings: ServerSettings, forwarded_allow_ips: str | None = None) -> str | None:
    """What ``trivue server`` logs at start-up when browsers of other machines, reaching it directly
    over plain HTTP, will drop its Secure session cookie; None when they cannot or will not.

    ``forwarded_allow_ips``: the proxies uvicorn trusts (default: its ``FORWARDED_ALLOW_IPS``, as
    ``trivue server`` runs it with ``proxy_headers``). Behind a trusted TLS proxy on another machine
    the users are on https://, and the warning would only cry wolf at every start."""
    if not settings.session_cookie_secure or _listens_on_loopback(settings.host):
        return None
    if forwarded_allow_ips is None:
        forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", UVICORN_TRUSTED_PROXIES)
    if trusts_a_remote_proxy(forwarded_allow_ips):
        return None
    return (f"listening on {settings.host} port {settings.port} over plain HTTP with cookie_secure on: a browser "
            f"on another machine at http://<this machine>:{settings.port}/ drops the Secure session cookie, so "
            f"its login page refuses to sign in and says why. Behind a TLS reverse proxy on another machine, "
            f"name it in FORWARDED_ALLOW_IPS (this warning then goes). To let such a browser in: {WHAT_TO_DO}")


def browser_page(request: Request) -> str | None:
    """The address of the page that sent this request (``Origin``, else ``Referer``): every browser
    sends one with a POST; None for a script."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    return claimed if claimed and claimed != "null" else None


def cookie_dropped(request: Request, settings: ServerSettings) -> bool:
    """The browser that sent this login will drop its Secure cookie: its page is plain http on another
    machine. Judged by the page's own address (``Origin``, else ``Referer``; browsers send one with
    every POST, and ``same_origin`` has checked that it names this server), not by the request's
    scheme: behind a TLS reverse proxy on another machine, which uvicorn does not trust for
    ``X-Forwarded-Proto`` by default, the request reads http while the browser is on https and keeps
    the cookie. A script sending neither header is left to its own cookie jar."""
    if not settings.session_cookie_secure or (claimed := browser_page(request)) is None:
        return False
    page = urlsplit(claimed)
    return page.scheme.lower() == "http" and not loopback_host(page.hostname or "")


def secure_cookie(request: Request, settings: ServerSettings) -> bool:
    """Whether this login's cookie is Secure: by the scheme its user is on. A browser (its page's
    address) is on https://, or on this very machine, where browsers keep a Secure cookie from plain
    http too (``cookie_dropped`` has refused the others). A script is on the request's scheme, as
    uvicorn sees it: ``X-Forwarded-Proto`` believed from ``FORWARDED_ALLOW_IPS`` only. Over plain
    http its cookie jar (Python's, curl's) keeps a Secure cookie and never sends it back: every call
    after the login answered 401."""
    if not settings.session_cookie_secure:
        return False
    return browser_page(request) is not None or request.url.scheme == "https"


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)  # as auth.add_user allows

    @field_validator("name")
    @classmethod
    def printable(cls, name: str) -> str:
        # No account has such a name (auth.check_name), and a NUL would reach PostgreSQL, which
        # refuses it in text (a 500), and the audit log's actor.
        if not name.isprintable():
            raise ValueError("a user name has printable characters only")
        return name


async def _read_form(request: Request) -> LoginForm:
    """JSON from scripts and the dashboard's fetch, or a classic HTML form post."""
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            return LoginForm.model_validate(await request.json())
        form = await request.form()
        return LoginForm.model_validate({k: form.get(k) for k in ("name", "password")})
    except (ValidationError, ValueError) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected name and password") from error


# The body _read_form reads, as the OpenAPI document shows it (the route reads the request itself).
LOGIN_BODY = {"requestBody": {"required": True, "content": {
    kind: {"schema": LoginForm.model_json_schema()}
    for kind in ("application/json", "application/x-www-form-urlencoded")}}}
LOGIN_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unknown user or wrong password"},
    403: {"description": "A state-changing request from another site (its Origin or Referer is not this server); "
                         "or a browser on a plain http:// page of another machine, which would drop the Secure "
                         "session cookie (the detail says what to do)"},
    422: {"description": "No name or password, or not as a user name or password can be"},
    429: {"description": "Too many failed logins for this name from this address, from this address whatever "
                         "the names, or for this name from addresses where it never logged in: see Retry-After"},
}


def login_router(throttle: LoginThrottle | None = None) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["login"])
    throttle = throttle or LoginThrottle()
    refused_over_http: list[str] = []  # the first page refused, for the log's one line

    def check(db: Session, form: LoginForm, address: str, hours: int, old: str | None) -> tuple[User, str, datetime]:
        attempt = throttle.attempt(db, form.name, address)
        if isinstance(attempt, Refusal):
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"too many failed logins: try again in {attempt.retry_after_s} s",
                                headers={"Retry-After": str(attempt.retry_after_s)})
        user = check_password(db, form.name, form.password)
        if user is None:
            audit(db, f"user:{form.name}", "login.failed", detail=address)
            throttle.failed(db, attempt)
            db.commit()
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user or wrong password")
        throttle.succeeded(db, attempt)
        if old:  # the browser's previous session ends: its key, kept by whoever saw it, opens nothing
            close_session(db, old)
        key, expires = open_session(db, user, hours)
        db.commit()
        return user, key, expires

    # SameOrigin: another web site's form could otherwise sign a visitor into the attacker's account
    # (login CSRF: the visitor's annotations and campaign reviews then go under that account).
    @router.post("/login", summary="Open a browser session (sets the trivue_session cookie)", response_model=LoggedIn,
                 dependencies=[SameOrigin], openapi_extra=LOGIN_BODY, responses=LOGIN_REFUSALS)
    async def login(request: Request, response: Response, db: SessionDep, ctx: ContextDep) -> dict[str, str]:
        if cookie_dropped(request, ctx.settings):
            # Before the password: a session opened now would be lost by the browser, its key having
            # crossed the network in clear; and the user would only see the login page again.
            if not refused_over_http:  # once: the start-up warning keeps quiet behind a trusted proxy
                refused_over_http.append(page := str(browser_page(request))[:100])
                log.warning("a browser on %s (plain http, another machine) cannot keep the Secure session cookie: "
                            "its login is refused. To let it: %s", page, WHAT_TO_DO)
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{PLAIN_HTTP_REFUSAL}: this browser's page is http:// on another machine, and "
                                f"browsers drop a Secure cookie there. To sign in: {WHAT_TO_DO}")
        form = await _read_form(request)
        address = request.client.host if request.client else "unknown"
        # argon2 takes tens of milliseconds of CPU on purpose, and the database is synchronous: in a
        # worker thread, so that a burst of logins (a guesser with invented names) does not hold
        # every other request of the server behind it.
        user, key, expires = await run_in_threadpool(check, db, form, address, ctx.settings.session_hours,
                                                     request.cookies.get(SESSION_COOKIE))
        response.set_cookie(SESSION_COOKIE, key, max_age=ctx.settings.session_hours * 3600, expires=expires,
                            httponly=True, samesite="lax", path="/",
                            secure=secure_cookie(request, ctx.settings))
        return {"name": user.name, "role": user.role, "expires_at": expires.isoformat()}

    @router.post("/logout", summary="End the browser session", response_model=Done, dependencies=[SameOrigin])
    def logout(request: Request, response: Response, db: SessionDep) -> dict[str, bool]:
        if key := request.cookies.get(SESSION_COOKIE):
            close_session(db, key)
            db.commit()
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"ok": True}

    return router
