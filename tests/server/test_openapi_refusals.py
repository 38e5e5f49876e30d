"""Every refusal a route answers is in its OpenAPI operation, with the body's schema it is sent with.

schemathesis (``status_code_conformance``, ``response_schema_conformance``, ``content_type_conformance``)
found each of these answers undocumented: 401 and 403 on every signed-in route, 403 for another
site's request, 404 for an id that names nothing, the routes' one-sentence 422 (FastAPI documents only
its list of field errors), the import's 415, GeoJSON documented as ``application/json``. A client
generated from the spec treats such an answer as a broken contract. Here the same requests, made
once each by hand, no schemathesis needed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import Server

SHA = "ab" * 32
EVIL = {"Origin": "https://evil.example"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'trivue.db'}"  # the document is the same on PostgreSQL


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False, household_level=True)) as server:
        app = server.client.app
        app.state.ctx = dataclasses.replace(app.state.ctx, publish_config=lambda truck, config: None)
        yield server


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _types(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(document, schema)
    found = {schema["type"]} if "type" in schema else set()
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(document, option)
    return found


def _undocumented(document: dict[str, Any], template: str, method: str, response: Any) -> str | None:
    """Why ``response`` breaks the operation's document, or None."""
    answers = document["paths"][template][method.lower()]["responses"]
    code = str(response.status_code)
    if code not in answers:
        return f"{method} {template}: {code} not documented (only {sorted(answers)})"
    media = response.headers.get("content-type", "").split(";")[0]
    content = answers[code].get("content", {})
    if media not in content:
        return f"{method} {template}: {code} as {media!r} not documented (only {sorted(content)})"
    detail = response.json().get("detail") if media == "application/json" else None
    if isinstance(detail, str):
        body = _resolve(document, content[media].get("schema", {}))
        if "string" not in _types(document, body.get("properties", {}).get("detail", {})):
            return f"{method} {template}: {code} with a sentence as detail, documented as {body.get('title')}"
    return None


def test_every_refusal_is_documented_with_its_body(api: Server) -> None:
    client, document = api.client, api.client.get("/openapi.json").json()
    viewer, manager, admin = api.token("viewer"), api.token("manager"), api.token("admin")
    lift = f"/api/lifts/{uuid.uuid4()}"
    calls = [  # (route as documented, method, url, headers, keyword arguments, the status expected)
        ("/api/streets", "GET", "/api/streets", {}, {}, 401),
        ("/api/lifts", "GET", "/api/lifts", viewer, {}, 403),
        ("/api/alerts/stream", "GET", "/api/alerts/stream", {}, {}, 401),
        ("/metrics", "GET", "/metrics", {}, {}, 401),
        ("/api/trucks/{truck_id}/config", "PUT", "/api/trucks/benne-01/config", {**admin, **EVIL}, {"json": {}}, 403),
        ("/api/lifts/{event_id}", "GET", lift, manager, {}, 404),
        ("/api/models/{sha}", "GET", f"/api/models/{SHA}", viewer, {}, 404),
        ("/api/trucks/{truck_id}/config", "GET", "/api/trucks/benne-01/config", admin, {}, 404),
        ("/api/rollouts/rollback", "POST", "/api/rollouts/rollback", admin, {}, 422),
        ("/api/login", "POST", "/api/login", {}, {}, 422),
        ("/api/login", "POST", "/api/login", {}, {"json": {"name": "nobody", "password": "wrong"}}, 401),
        ("/api/reminders/households/{key}", "DELETE", "/api/reminders/households/0", manager, {}, 422),
        ("/api/reminders/households/import", "POST", "/api/reminders/households/import", manager,
         {"content": "key\n", "headers": {"Content-Type": "text/plain"}}, 415),
        ("/api/streets.geojson", "GET", "/api/streets.geojson", viewer, {}, 200),
        ("/api/network.geojson", "GET", "/api/network.geojson", viewer, {}, 200),
    ]
    broken = []
    for template, method, url, headers, kwargs, expected in calls:
        sent = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        response = client.request(method, url, **sent)
        assert response.status_code == expected, (method, url, response.status_code, response.text)
        if why := _undocumented(document, template, method, response):
            broken.append(why)
    assert broken == [], "\n".join(broken)


def test_a_rollout_of_a_model_nobody_published_is_a_404(api: Server) -> None:
    """As GET /api/models/{sha} answers: 422 is for a rollout refused (no trucks, bad canary count)."""
    admin = {**api.token("admin"), "Origin": "http://testserver"}
    for action, body in (("rollout", {"canary": 1}), ("confirm", None)):
        response = api.client.post(f"/api/models/{SHA}/{action}", json=body, headers=admin)
        assert (response.status_code, response.json()["detail"]) == (
            404, f"no published model with sha256 {SHA} (see `trivue models list`)"), action


def test_login_documents_the_body_it_reads(api: Server) -> None:
    """The route reads JSON or a form itself: without a documented body, generated requests sent none."""
    body = api.client.get("/openapi.json").json()["paths"]["/api/login"]["post"]["requestBody"]["content"]
    for kind in ("application/json", "application/x-www-form-urlencoded"):
        assert body[kind]["schema"]["required"] == ["name", "password"], kind


def test_the_household_switch_refusal_is_documented(make_settings: Any, run_server: Any) -> None:
    """Household level off (the default): the contacts answer 409, which their operations list."""
    with run_server(make_settings(ingest_enabled=False, household_level=False)) as server:
        document, manager = server.client.get("/openapi.json").json(), server.token("manager")
        broken = []
        for method, url, kwargs in (("GET", "/api/reminders/households", {}),
                                    ("POST", "/api/reminders/households/import",
                                     {"content": "key\n", "headers": {**manager, "Content-Type": "text/csv"}})):
            response = server.client.request(method, url, **{"headers": manager, **kwargs})
            assert response.status_code == 409, (method, url, response.text)
            if why := _undocumented(document, url, method, response):
                broken.append(why)
        assert broken == [], "\n".join(broken)
