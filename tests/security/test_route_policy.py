"""docs/api.md's route table is the access policy: every route of the app against every kind of caller.

The table (and, for ``/api/reminders/...``, the one in docs/reminders.md) is read here and each route
the app serves (``create_app(settings).routes``, through its included routers) is called by: nobody,
an expired session, a session ended by logout, a disabled account's session, a session of each role,
a truck's token for the truck the data are about, another truck's token, and, on every state-changing
method, an admin's session cookie sent by another origin (a same-site sibling such as another of the
collectivité's sites, where SameSite=Lax still sends the cookie, and a cross-site form without any
Origin). A route the docs do not give a role fails ``test_every_route_is_in_the_documented_policy``;
a route more open, or more closed, than documented fails the matrix. ``test_access.py`` keeps the
finer expectations (each allowed route's exact answer on an empty site).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.config import load_settings
from server.db import utcnow
from server.fleet.models import Assignment, FleetModel
from server.fleet.registry import model_path
from server.ingest.models import Truck
from server.web.accounts import ROLES, LoginSession, User
from server.web.auth import add_user, create_token, digest, open_session, set_disabled
from server.web.deps import SESSION_COOKIE
from tests.security.test_access import ACCESS, PAGE, PUBLIC, app_routes

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOST = "https://trivue.test"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# What the docs write in the role column, and what it means here.
ADMIN_OR_OWN_TRUCK, ADMIN_OR_ASKED_TRUCK = "admin, or that truck's token", "a truck's token, or admin"
ROLE_WORDS = {"none": PUBLIC, "viewer": "viewer", "viewer (a token for Prometheus)": "viewer",
              "annotator": "annotator", "manager": "manager", "admin": "admin",
              ADMIN_OR_OWN_TRUCK: ADMIN_OR_OWN_TRUCK, ADMIN_OR_ASKED_TRUCK: ADMIN_OR_ASKED_TRUCK}
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)[^`]*`")


def shape(path: str) -> str:
    """``/api/models/{sha256}`` and the app's ``/api/models/{sha}`` are one route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def expand(path: str) -> list[str]:
    """``/api/opendata/streets.{csv,geojson}`` names two routes."""
    found = re.search(r"\{([^}]*,[^}]*)\}", path)
    if found is None:
        return [path]
    return [path[:found.start()] + part + path[found.end():] for part in found.group(1).split(",")]


def table_rows(text: str) -> Iterator[tuple[str, str]]:
    """(first cell, second cell) of every Markdown table row whose first cell starts with code."""
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            yield cells[0], cells[1] if len(cells) > 1 else ""


def documented_policy() -> dict[tuple[str, str], str]:
    """(method, route shape) -> role, from docs/api.md's route table (and docs/reminders.md's routes)."""
    reminders = [(m, shape(p)) for first, _ in table_rows((DOCS / "reminders.md").read_text(encoding="utf-8"))
                 for m, p in ROUTE.findall(first) if p.startswith("/api/reminders/")]
    policy: dict[tuple[str, str], str] = {}
    for first, role_text in table_rows((DOCS / "api.md").read_text(encoding="utf-8")):
        routes = ([(m, shape(e)) for m, p in ROUTE.findall(first) for e in expand(p)]
                  or (reminders if first.startswith("`/api/reminders/...`") else []))
        if routes:
            assert role_text in ROLE_WORDS, f"docs/api.md: {first}: unknown role {role_text!r}"
            policy.update(dict.fromkeys(routes, ROLE_WORDS[role_text]))
    return policy


DOCUMENTED = documented_policy()
SERVED_PAGES = {(m, shape(p)) for (m, p), rule in ACCESS.items() if rule in (PUBLIC, PAGE) and not p.startswith("/api")}


class Site:
    """An empty site (household level off, no ingest, no broker) with one truck config and one model
    the fleet asked truck-a to run: the truck routes then answer 200 to their rightful caller."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.sessions = client.app.state.ctx.sessions  # type: ignore[attr-defined]
        settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
        onnx = b"not really onnx, only bytes to serve"
        self.sha = hashlib.sha256(onnx).hexdigest()
        model_path(settings.data_dir, self.sha).parent.mkdir(parents=True, exist_ok=True)
        model_path(settings.data_dir, self.sha).write_bytes(onnx)
        now = utcnow()
        with self.sessions() as session:
            for role in ROLES:
                add_user(session, f"user-{role}", "correct horse battery staple", role)
            self.trucks = {t: create_token(session, "truck", f"truck:{t}", t) for t in ("truck-a", "truck-b")}
            session.add(FleetModel(sha256=self.sha, name="m", version="1", quantised=False, names=["x"],
                                   imgsz=[640, 640], metrics={}, card=None, size_bytes=len(onnx),
                                   published_at=now, published_by="test"))
            session.add(Assignment(truck_id="truck-a", sha256=self.sha, name="m", version="1",
                                   assigned_at=now, assigned_by="test"))
            session.add(Truck(truck_id="truck-a", status="unknown", config={"config_version": "20261201T000000Z"}))
            session.commit()

    def cookie(self, role: str, state: str = "open") -> str:
        """A fresh session key of ``user-<role>``: open, expired, ended by logout, or of a disabled account."""
        with self.sessions() as session:
            user = session.scalar(select(User).where(User.name == f"user-{role}"))
            assert user is not None
            if state == "expired":
                key = secrets.token_urlsafe(32)
                session.add(LoginSession(key_hash=digest(key), user_id=user.id, created_at=utcnow() - timedelta(days=2),
                                         expires_at=utcnow() - timedelta(seconds=1)))
            else:
                key, _ = open_session(session, user, 12)
            session.commit()
        if state == "ended":
            self.client.post("/api/logout", headers={"Cookie": f"{SESSION_COOKIE}={key}", "Origin": HOST})
            self.client.cookies.clear()
        if state == "disabled":
            with self.sessions() as session:
                set_disabled(session, f"user-{role}", True)
                session.commit()
        return key

    def enable(self, role: str) -> None:
        with self.sessions() as session:
            set_disabled(session, f"user-{role}", False)
            session.commit()

    def url(self, path: str) -> str:
        values = {"event_id": str(uuid.uuid4()), "truck_id": "truck-a", "sha": self.sha, "lang": "fr"}
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)

    def call(self, method: str, path: str, headers: dict[str, str], form: bool = False) -> int:
        self.client.cookies.clear()
        body: dict[str, Any] = {}
        if method in UNSAFE:
            body = {"content": b"a=1"} if form else {"json": {}}
        if form:
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        response = self.client.request(method, self.url(path), headers=headers, follow_redirects=False, **body)
        return response.status_code


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("policy"), ingest_enabled=False)
    with TestClient(create_app(settings), base_url=HOST) as client:
        yield Site(client)


def served_routes(site: Site) -> dict[tuple[str, str], str]:
    """(method, shape) -> the app's own path, for every route but HEAD."""
    return {(m, shape(p)): p for m, p in app_routes(site.client.app) if m != "HEAD"}


def test_every_route_is_in_the_documented_policy(site: Site) -> None:
    served = set(served_routes(site))
    undocumented = sorted(served - set(DOCUMENTED) - SERVED_PAGES)
    assert undocumented == [], "routes without a role in docs/api.md's route table (or docs/reminders.md's)"
    assert sorted(set(DOCUMENTED) - served) == [], "docs/api.md documents routes the app does not serve"
    # The enforced matrix of test_access.py says what the docs say (truck routes: their base role).
    base = {ADMIN_OR_OWN_TRUCK: "admin", ADMIN_OR_ASKED_TRUCK: "admin"}
    differ = [(key, role, ACCESS.get((key[0], served_routes(site)[key])))
              for key, role in DOCUMENTED.items()
              if base.get(role, role) != ACCESS.get((key[0], served_routes(site)[key]))]
    assert differ == [], "docs/api.md and test_access.ACCESS disagree"


def expected(rule: str, who: str) -> str:
    """'open' (anything but 401/403), '401' or '403' for caller ``who`` on a route of ``rule``."""
    if rule == PUBLIC:
        return "open"
    if who in ("anonymous", "expired", "ended", "disabled"):
        return "401"
    if who in ROLES:
        return "open" if ROLES.index(who) >= ROLES.index(rule if rule in ROLES else "admin") else "403"
    # Trucks: the data are truck-a's (its config, the model it was asked to run).
    if rule in (ADMIN_OR_OWN_TRUCK, ADMIN_OR_ASKED_TRUCK) and who == "truck-a":
        return "open"
    return "403"


API = sorted(DOCUMENTED.items())


@pytest.mark.parametrize("key,rule", API, ids=[f"{m} {p}" for (m, p), _ in API])
def test_each_caller_gets_what_docs_api_md_says(site: Site, key: tuple[str, str], rule: str) -> None:
    method, _ = key
    path = served_routes(site)[key]
    wrong = []
    for who in ("anonymous", "expired", "ended", "disabled", *ROLES, "truck-a", "truck-b"):
        want = expected(rule, who)
        if want == "open" and path.endswith("/stream"):
            continue  # an allowed event stream never ends; its refusals are checked
        if who in site.trucks:
            headers = {"Authorization": f"Bearer {site.trucks[who]}"}
        elif who == "anonymous":
            headers = {}
        else:
            state = who if who in ("expired", "ended", "disabled") else "open"
            headers = {"Cookie": f"{SESSION_COOKIE}={site.cookie('admin' if state != 'open' else who, state)}"}
            if method in UNSAFE:
                headers["Origin"] = HOST  # what a browser sends with the dashboard's own fetch
        try:
            got = site.call(method, path, headers)
        finally:
            if who == "disabled":
                site.enable("admin")
        if (want == "open" and got in (401, 403)) or (want != "open" and str(got) != want):
            wrong.append((who, want, got))
    assert wrong == [], f"{method} {path} ({rule}): (caller, expected, got)"


UNSAFE_ROUTES = sorted(key for key in DOCUMENTED if key[0] in UNSAFE)


@pytest.mark.parametrize("key", UNSAFE_ROUTES, ids=[f"{m} {p}" for m, p in UNSAFE_ROUTES])
def test_a_state_changing_route_refuses_an_admin_cookie_sent_by_another_origin(site: Site,
                                                                              key: tuple[str, str]) -> None:
    """CSRF: the session cookie is SameSite=Lax, which a sibling site of the same domain still gets,
    and a form post with the cookie and no Origin is what an old browser sends. Each is refused
    before the route does anything, whatever its body (``confirm`` and ``rollback`` read none)."""
    method, path = key[0], served_routes(site)[key]
    cookie = {"Cookie": f"{SESSION_COOKIE}={site.cookie('admin')}"}
    answers = {origin: site.call(method, path, {**cookie, "Origin": origin})
               for origin in ("https://intranet.trivue.test", "https://evil.example", "null")}
    answers["referer elsewhere"] = site.call(method, path, {**cookie, "Referer": "https://evil.example/x"})
    answers["form, no origin"] = site.call(method, path, cookie, form=True)
    assert answers == dict.fromkeys(answers, 403), f"{method} {path}"


def test_the_dashboards_own_requests_and_tokens_pass_the_origin_check(site: Site) -> None:
    """The guard is no blanket refusal: the same origin with the cookie, and a script with a bearer
    token (no Origin), reach the route (here the rollback, which finds no rollout: 422)."""
    with site.sessions() as session:
        admin = create_token(session, "admin", "policy-admin")
        session.commit()
    cookie = {"Cookie": f"{SESSION_COOKIE}={site.cookie('admin')}"}
    assert site.call("POST", "/api/rollouts/rollback", {**cookie, "Origin": HOST}) == 422
    assert site.call("POST", "/api/rollouts/rollback", {**cookie, "Referer": f"{HOST}/flotte"}) == 422
    assert site.call("POST", "/api/rollouts/rollback", {"Authorization": f"Bearer {admin}"}) == 422


def test_streets_geojson_is_an_audited_export_like_the_csv(site: Site) -> None:
    """docs/privacy.md: every export is in the audit log; the GeoJSON (for QGIS) is the same rows as
    the audited CSV, and the dashboard never asks for it."""
    with site.sessions() as session:
        viewer = create_token(session, "viewer", "policy-viewer")
        session.commit()
    response = site.client.get("/api/streets.geojson", headers={"Authorization": f"Bearer {viewer}"})
    assert response.status_code == 200
    with site.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "streets.export")
                                .order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.actor == "token:policy-viewer" and entry.detail.startswith("geojson, ")
