"""Every route that serves household data or photos says ``Cache-Control: no-store``, by one rule.

The header was written by hand in five places (the reminders' route class, their page, the
dashboard's pages, the evidence photo, the labelling photo): a new photo route that forgot it let
an office browser keep a household's bin in its disk cache. ``server.web.private.NoStoreRoute``
owns the rule now; this test walks the app's routes, requires it on the routes listed private
below, and fails on a photo or page route that is listed nowhere (add it to one list, and to
``PRIVATE`` with ``private_get`` or a ``NoStoreRoute`` router when it shows households or bins).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute, _IncludedRouter  # how FastAPI 0.16x keeps included routers
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from server.web.private import NO_STORE, NoStoreRoute, private_get

# Private: households' bins, or a page of the dashboard (its pages say no-store since they show
# who is signed in and lead to household data; the reminders' every answer names households).
PRIVATE_PHOTOS = {"/api/lifts/{event_id}/evidence.jpg", "/api/labels/photos/{event_id}/photo.jpg"}
PRIVATE_PAGES = {
    "/login",
    "/carte",
    "/classement",
    "/flotte",
    "/alertes",
    "/qualite",
    "/annotation",
    "/journal",
    "/rues/{street_id}",
    "/accessibilite",
    "/rappels",
}
# API answers that name bins, addresses, GPS fixes or people: a lift's tag and address, a refused
# message's raw bytes (its tag and fix), the audit trail's actors and targets.
PRIVATE_API = {"/api/lifts", "/api/lifts/{event_id}", "/api/dead-letters", "/api/audit"}
PRIVATE_PREFIX = "/api/reminders/"
PRIVATE = PRIVATE_PHOTOS | PRIVATE_PAGES | PRIVATE_API
# Pages that are not private, and why: they show nothing of anyone.
PUBLIC_PAGES = {
    "/": "a redirect to /carte",
    "/langue/{lang}": "a redirect that sets the language",
    "/docs": "Swagger UI over the OpenAPI document",
}
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def routes(app: Any) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every route the app serves, through included routers."""

    def walk(found: list[Any], prefix: str) -> Iterator[tuple[str, APIRoute]]:
        for route in found:
            if isinstance(route, _IncludedRouter):
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                yield prefix + route.path, route

    return walk(app.routes, "")


def serves_a_photo(path: str, route: APIRoute) -> bool:
    content = (route.responses.get(200) or {}).get("content", {})
    return path.lower().endswith(PHOTO_SUFFIXES) or any(kind.startswith("image/") for kind in content)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # dev: every request is an admin's, so that each page renders without an account.
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("data"), ingest_enabled=False, dev=True)
    with TestClient(create_app(settings)) as client:
        yield client


def test_every_private_route_owns_no_store_and_none_is_left_unlisted(client: TestClient) -> None:
    served = dict(routes(client.app))
    assert served.keys() >= PRIVATE, f"listed private but not served: {sorted(PRIVATE - served.keys())}"
    reminders = {path for path in served if path.startswith(PRIVATE_PREFIX)}
    assert reminders, "the reminders are mounted by default: their routes must be walked"
    forgot = sorted(path for path in PRIVATE | reminders if not isinstance(served[path], NoStoreRoute))
    assert not forgot, f"private routes that do not say no-store (use server.web.private): {forgot}"
    photos = {path for path, route in served.items() if serves_a_photo(path, route)}
    assert photos - PRIVATE_PHOTOS == set(), f"photo routes listed nowhere: {sorted(photos - PRIVATE_PHOTOS)}"
    pages = {path for path, route in served.items() if not route.include_in_schema and "GET" in route.methods}
    unlisted = pages - PRIVATE_PAGES - PUBLIC_PAGES.keys()
    assert not unlisted, f"dashboard pages listed neither private nor public: {sorted(unlisted)}"


@pytest.mark.parametrize("path", sorted(PRIVATE_API - {"/api/lifts/{event_id}"}))
def test_each_private_api_answer_says_no_store(client: TestClient, path: str) -> None:
    answer = client.get(path)  # dev mode: an admin, household level off
    assert answer.status_code == 200, (path, answer.text[:200])
    assert answer.headers.get("cache-control") == NO_STORE, path


@pytest.mark.parametrize("path", sorted(PRIVATE_PAGES))
def test_each_private_page_answers_no_store(client: TestClient, path: str) -> None:
    # dev mode: a signed-in admin, not the login page's redirect
    answer = client.get(path.replace("{street_id}", "1"), follow_redirects=False)
    # The street page of a street that does not exist is a page too (404), and /login sends a
    # signed-in caller on (303): what counts is that no answer may be kept.
    assert answer.status_code in (200, 303, 404), (path, answer.status_code)
    assert answer.headers.get("cache-control") == NO_STORE, path


def test_a_private_photo_route_says_no_store_whatever_its_handler_returns(tmp_path: Path) -> None:
    """``private_get`` on a router that is not private: the photo says no-store, its neighbour
    nothing, and the handler writes no header itself (the rule is the route's, not each handler's)."""
    photo = tmp_path / "bin.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    router = APIRouter(prefix="/api")

    @private_get(router, "/photo.jpg", response_class=FileResponse)
    def private_photo() -> FileResponse:
        return FileResponse(photo, media_type="image/jpeg")

    @router.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        answer = client.get("/api/photo.jpg")
        assert answer.status_code == 200 and answer.content == photo.read_bytes()
        assert answer.headers["cache-control"] == NO_STORE
        assert "cache-control" not in client.get("/api/health").headers
    assert [path for path, route in routes(app) if isinstance(route, NoStoreRoute)] == ["/api/photo.jpg"]
