"""Commune-scoped accounts are deny by default: every route of the app (``app.routes``, through its
included routers) is called with a scoped account's session, and again with a scoped API token
(``trivue tokens create --communes``), and each one not opened to such
accounts on purpose (``server.web.commune_scope.open_to_communes``) must answer 403 naming the
scope. A route added later is therefore closed to a mairie's agents until someone opens it, makes
it filter by the account's communes, and lists it in docs/api.md's section, which this test reads.
Routes open to anyone (``PUBLIC`` in test_access.py: the login, the health check) stay open."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.config import load_settings
from server.web.accounts import User
from server.web.auth import add_user, create_token, open_session
from server.web.commune_scope import opened
from server.web.deps import SESSION_COOKIE
from tests.security.test_access import ACCESS, PUBLIC

HOST = "https://trivue.test"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION = "### Commune-scoped accounts"
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)[^`]*`")
VALUES = {"event_id": str(uuid.uuid4()), "truck_id": "truck-a", "lang": "fr", "sha": "a" * 64}


def documented_open() -> set[tuple[str, str]]:
    """The routes docs/api.md's section says a scoped account may use."""
    text = DOCS.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/api.md lacks its {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    return set(ROUTE.findall(section))


def served(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path, endpoint) of every route the app serves, HEAD aside."""
    from fastapi.routing import _IncludedRouter

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str, Any]]:
        for route in routes:
            if isinstance(route, _IncludedRouter):
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                yield from ((m, prefix + route.path, route.endpoint) for m in route.methods if m != "HEAD")

    yield from walk(app.routes, "")


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("scope"), ingest_enabled=False)
    with TestClient(create_app(settings), base_url=HOST) as client:
        with client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
            # An admin: the highest role, so that only the scope can refuse it.
            add_user(session, "mairie", "correct horse battery staple", "admin", communes=["45234"])
            session.commit()
        yield client


def signed_in(client: TestClient) -> str:
    with client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        user = session.scalar(select(User).where(User.name == "mairie"))
        assert user is not None
        key, _ = open_session(session, user, 1)
        session.commit()
    return key


@pytest.fixture(scope="module")
def scoped_token(scoped: TestClient) -> str:
    """An API token of the same role and commune as the account (``trivue tokens create --communes``)."""
    with scoped.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        token = create_token(session, "admin", "sig-mairie", communes=["45234"])
        session.commit()
    return token


def call(client: TestClient, method: str, path: str, token: str | None = None) -> Any:
    url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: VALUES.get(m.group(1), "1"), path)
    # A session of its own for each call: POST /api/logout ends the one it is sent.
    who = {"Authorization": f"Bearer {token}"} if token else {"Cookie": f"{SESSION_COOKIE}={signed_in(client)}"}
    headers = {**who, "Origin": HOST}
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(method, url, headers=headers, follow_redirects=False, **body)


# Served outside FastAPI's routes, so never through ``current_principal`` nor ``guard`` (nor the walk
# above): none may show data. A mounted sub-application or a websocket added later lands here first.
OUTSIDE_THE_GUARD = {("Route", "/openapi.json"), ("Mount", "/static")}


def outside_the_guard(app: Any) -> set[tuple[str, str]]:
    from fastapi.routing import _IncludedRouter

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            if isinstance(route, _IncludedRouter):
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif not isinstance(route, APIRoute):
                yield type(route).__name__, prefix + getattr(route, "path", "")

    return set(walk(app.routes, ""))


def test_only_routes_that_show_no_data_bypass_the_guard(scoped: TestClient) -> None:
    assert outside_the_guard(scoped.app) == OUTSIDE_THE_GUARD


def test_the_routes_opened_to_scoped_accounts_are_those_docs_api_md_lists(scoped: TestClient) -> None:
    client = scoped
    marked = {(method, path) for method, path, endpoint in served(client.app) if opened(endpoint)}
    assert marked == documented_open()


@pytest.mark.parametrize("kind", ["session", "token"])
def test_every_other_route_refuses_a_scoped_account(scoped: TestClient, request: pytest.FixtureRequest,
                                                    kind: str) -> None:
    client = scoped
    token = request.getfixturevalue("scoped_token") if kind == "token" else None
    wrong = []
    checked = 0
    for method, path, endpoint in sorted(served(client.app), key=lambda r: (r[1], r[0])):
        if path.endswith("/stream") and opened(endpoint):
            continue  # an allowed event stream never ends
        answer = call(client, method, path, token)
        refused = answer.status_code == 403 and "45234" in answer.text and "communes" in answer.text
        if opened(endpoint) or ACCESS.get((method, path)) == PUBLIC:
            if answer.status_code in (401, 403):
                wrong.append((method, path, "should be open", answer.status_code))
        elif not refused:
            wrong.append((method, path, "should be refused", answer.status_code, answer.text[:80]))
        checked += 1
    assert wrong == []
    assert checked > 60  # the walk found the app's routes, included routers' too
