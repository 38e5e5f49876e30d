"""Browser login: ``POST /api/login`` sets the session cookie, ``POST /api/logout`` ends it.

The cookie is HttpOnly (scripts cannot read it), SameSite=Lax (other sites cannot post with it)
and Secure unless ``cookie_secure`` is off or the server runs in dev mode on plain HTTP.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.auth import audit, check_password, close_session, open_session
from server.deps import SESSION_COOKIE, ContextDep, SessionDep

MAX_FAILURES = 5
LOCKOUT_S = 15 * 60


class LoginThrottle:
    """Refuses a user name for 15 minutes after 5 failed passwords (guessing takes forever)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = LOCKOUT_S) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(name.lower(), deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def blocked(self, name: str) -> bool:
        with self._lock:
            return len(self._recent(name, time.monotonic())) >= self.max_failures

    def failed(self, name: str) -> None:
        with self._lock:
            self._recent(name, time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.lower(), None)


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


async def _read_form(request: Request) -> LoginForm:
    """JSON from scripts and the dashboard's fetch, or a classic HTML form post."""
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            return LoginForm.model_validate(await request.json())
        form = await request.form()
        return LoginForm.model_validate({k: form.get(k) for k in ("name", "password")})
    except (ValidationError, ValueError) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected name and password") from error


def login_router(throttle: LoginThrottle | None = None) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["login"])
    throttle = throttle or LoginThrottle()

    @router.post("/login", summary="Open a browser session (sets the trivue_session cookie)")
    async def login(request: Request, response: Response, db: SessionDep, ctx: ContextDep) -> dict[str, Any]:
        form = await _read_form(request)
        if throttle.blocked(form.name):
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins: try again later",
                                headers={"Retry-After": str(LOCKOUT_S)})
        user = check_password(db, form.name, form.password)
        if user is None:
            throttle.failed(form.name)
            audit(db, f"user:{form.name}", "login.failed", detail=request.client.host if request.client else None)
            db.commit()
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user or wrong password")
        throttle.succeeded(form.name)
        key, expires = open_session(db, user, ctx.settings.session_hours)
        db.commit()
        response.set_cookie(SESSION_COOKIE, key, max_age=ctx.settings.session_hours * 3600, expires=expires,
                            httponly=True, samesite="lax", path="/",
                            secure=ctx.settings.cookie_secure and not ctx.settings.dev)
        return {"name": user.name, "role": user.role, "expires_at": expires.isoformat()}

    @router.post("/logout", summary="End the browser session")
    def logout(request: Request, response: Response, db: SessionDep) -> dict[str, bool]:
        if key := request.cookies.get(SESSION_COOKIE):
            close_session(db, key)
            db.commit()
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"ok": True}

    return router
