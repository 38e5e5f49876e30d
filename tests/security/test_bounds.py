"""Ids and dates at the edges of what the database and ``datetime`` can hold: 4xx naming the field, never 500.

A 64-bit column cannot hold 2**64 (SQLite raises ``OverflowError`` while binding, PostgreSQL a
``DataError``), and date arithmetic near year 1 or 9999 overflows. Every route of the OpenAPI spec
is called with such values, on SQLite and PostgreSQL, as an admin (the deepest code paths).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.conftest import BrokerAddress
from tests.server.conftest import Server
from tests.server.streets_db import postgres_database

HUGE_ID = 2**64
DATES = ["0001-01-01", "0999-12-31", "9999-12-31"]
DATETIMES = ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               mqtt_broker: BrokerAddress, postgres_available: bool) -> Iterator[Server]:
    """One app per database for the whole file: building it (routes, migrations) was most of each
    test's time, and every test here only sends requests the API must refuse. ``api`` checks that
    none of them changed what the next test sees."""
    with ExitStack() as stack:
        yield from _serve(request.param, stack, tmp_path_factory, mqtt_broker, postgres_available)


def _serve(database: str, stack: ExitStack, tmp_path_factory: pytest.TempPathFactory, mqtt_broker: BrokerAddress,
           postgres_available: bool) -> Iterator[Server]:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import load_settings

    folder = tmp_path_factory.mktemp("bounds")
    if database == "sqlite":
        url = f"sqlite:///{folder / 'trivue.db'}"
    elif not postgres_available:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    else:  # its own database: the session's is emptied by each test that asks for ``database_url``
        url = stack.enter_context(postgres_database("trivue_bounds"))
    tag = uuid.uuid4().hex[:10]
    settings = load_settings(env={}, data_dir=folder / "data", database_url=url, broker_url=mqtt_broker.url,
                             topic_prefix=f"test-{tag}/v1", mqtt_client_id=f"trivue-test-{tag}",
                             cookie_secure=False, retention_days=3650, ingest_enabled=False)
    app = create_app(settings)
    stack.callback(app.state.ctx.sessions.kw["bind"].dispose)
    with TestClient(app) as client:
        app.state.ctx = _no_publish(app.state.ctx)
        yield Server(settings, client, app.state.ctx.sessions, mqtt_broker)


# What a test may leave behind in the shared database: the tokens it made for itself (and their audit).
_OWN_ROWS = {"api_tokens", "audit_log"}


def _row_counts(api: Server) -> dict[str, int]:
    from sqlalchemy import func, select

    from server.db import Base

    with api.sessions() as db:
        return {name: db.scalar(select(func.count()).select_from(table)) or 0
                for name, table in Base.metadata.tables.items() if name not in _OWN_ROWS}


@pytest.fixture
def api(shared_api: Server) -> Iterator[Server]:
    before = _row_counts(shared_api)
    yield shared_api
    assert _row_counts(shared_api) == before, "a refused request changed the shared database"


def _no_publish(ctx: Any) -> Any:
    import dataclasses

    return dataclasses.replace(ctx, publish_config=lambda truck, config: None)


def _operations(api: Server) -> list[tuple[str, str, dict[str, Any]]]:
    spec = api.client.get("/openapi.json").json()
    return [(method.upper(), path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def _fill(path: str, op: dict[str, Any], value_for: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    query: dict[str, Any] = {}
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        types = [schema, *schema.get("anyOf", [])]
        kind = next((t.get("format") or t.get("type") for t in types if t.get("type") not in (None, "null")), None)
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", str(value_for.get(kind, "x")))
        elif param["in"] == "query" and kind in value_for:
            query[param["name"]] = value_for[kind]
    return path, query


def _call(api: Server, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
          raw: str | None = None) -> tuple[int, str]:
    """The call's status and text; ``raw``: a JSON body sent as written (NaN, Infinity...), else ``{}``."""
    if raw is not None:
        sent: dict[str, Any] = {"content": raw, "headers": {**headers, "Content-Type": "application/json"}}
    else:
        sent = {"json": {} if method in ("POST", "PUT") else None, "headers": headers}
    try:
        response = api.client.request(method, path, params=query, **sent)
    except Exception as error:  # the test client re-raises what would be a 500
        return 500, f"{type(error).__name__}: {error}"
    return response.status_code, response.text


def test_ids_beyond_64_bits_are_refused_naming_the_field(api: Server) -> None:
    admin = api.token("admin")
    bad, tried = [], 0
    for method, template, op in _operations(api):
        ids = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"
               and "integer" in (p["schema"].get("type"), *[t.get("type") for t in p["schema"].get("anyOf", [])])]
        queries = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"
                   and "integer" in (p["schema"].get("type"), *[t.get("type") for t in p["schema"].get("anyOf", [])])
                   and p["name"].endswith("_id")]
        for name in ids + queries:
            path, query = _fill(template, op, {"integer": 1})
            if name in ids:
                path = _fill(template, op, {"integer": HUGE_ID})[0]
            else:
                query[name] = HUGE_ID
            status, text = _call(api, method, path, query, admin)
            tried += 1
            if status not in (404, 422) or name not in text:
                bad.append(f"{method} {path} {query} -> {status}: {text[:160]}")
    assert tried >= 10
    assert bad == [], "\n".join(bad)


def _dated(op: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, format) of the operation's date and datetime query parameters."""
    found = []
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        formats = {t.get("format") for t in [schema, *schema.get("anyOf", [])]}
        for kind in ("date", "date-time"):
            if param["in"] == "query" and kind in formats:
                found.append((param["name"], kind))
    return found


@pytest.mark.parametrize("day", DATES)
def test_extreme_dates_never_give_a_server_error(api: Server, day: str) -> None:
    """Each date parameter alone at an extreme (the others at their defaults): 200, or 4xx naming it."""
    admin = api.token("admin")
    moment = DATETIMES[DATES.index(day)]
    bad, tried = [], 0
    for method, template, op in _operations(api):
        for name, kind in _dated(op):
            path, query = _fill(template, op, {"integer": 1})
            required = {p["name"]: "sac_ferme" for p in op.get("parameters", [])
                        if p["in"] == "query" and p.get("required")}
            query = {**query, **required, name: day if kind == "date" else moment}
            status, text = _call(api, method, path, query, admin)
            tried += 1
            if status >= 500 or (400 <= status < 500 and status != 404 and name not in text):
                bad.append(f"{method} {path} {query} -> {status}: {text[:160]}")
    assert tried >= 8
    assert bad == [], "\n".join(bad)


def test_a_campaign_body_with_extreme_or_reversed_dates_is_refused_naming_the_field(api: Server) -> None:
    manager = api.token("manager")
    for body, field in [({"since": "0187-09-15"}, "since"), ({"until": "9999-12-31"}, "until"),
                        ({"since": "2024-03-10", "until": "2024-03-01"}, "until"),
                        ({"since": "2999-12-31"}, "since"),  # after the default until (yesterday)
                        ({"street_id": HUGE_ID}, "street_id")]:
        response = api.client.post("/api/reminders/campaigns", json=body, headers=manager)
        assert response.status_code == 422 and field in response.text, (body, response.text)


def _numbers(schema: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The number fields of a request body's schema (following ``$ref`` once)."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    fields = []
    for name, field in schema.get("properties", {}).items():
        types = {t.get("type") for t in [field, *field.get("anyOf", [])]}
        if types & {"number", "integer"}:
            fields.append(name)
    return fields


@pytest.mark.parametrize("token", ["NaN", "Infinity", "1e400"])
def test_non_finite_numbers_in_a_body_are_a_422_naming_the_field(api: Server, token: str) -> None:
    """Python's json reads NaN, Infinity and 1e400 as floats that JSON cannot write back: the 422
    echoing them failed and answered 500."""
    admin = api.token("admin")
    spec = api.client.get("/openapi.json").json()
    bad, tried = [], 0
    for method, template, op in _operations(api):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if method not in ("POST", "PUT", "PATCH") or body is None:
            continue
        path, query = _fill(template, op, {"integer": 1, "string": "benne-01"})
        for name in _numbers(body, spec):
            status, text = _call(api, method, path, query, admin, raw=f'{{"{name}": {token}}}')
            tried += 1
            if status >= 500 or (status == 422 and name not in text):
                bad.append(f"{method} {path} {name}={token} -> {status}: {text[:160]}")
    assert tried >= 5
    assert bad == [], "\n".join(bad)


def test_a_period_that_ends_before_it_starts_is_a_422_on_every_route(api: Server) -> None:
    """Some routes answered such a period with an empty 200, as if nothing had happened in it."""
    admin = api.token("admin")
    bad, tried = [], 0
    for method, template, op in _operations(api):
        dated = dict(_dated(op))
        if method != "GET" or not {"since", "until"} <= set(dated):
            continue
        path, query = _fill(template, op, {"integer": 1})
        required = {p["name"]: "sac_ferme" for p in op.get("parameters", [])
                    if p["in"] == "query" and p.get("required")}
        since, until = (("2026-03-10", "2026-03-01") if dated["since"] == "date"
                        else ("2026-03-10T00:00:00+00:00", "2026-03-01T00:00:00+00:00"))
        status, text = _call(api, method, path, {**query, **required, "since": since, "until": until}, admin)
        tried += 1
        said = "is before since" in text or "est après la fin" in text  # the reminders' routes speak French
        if status != 404 and (status != 422 or not said):
            bad.append(f"{method} {path} -> {status}: {text[:160]}")
    assert tried >= 6
    assert bad == [], "\n".join(bad)


@pytest.mark.parametrize(("request_path", "says"), [
    (f"/api/streets?min_lifts={HUGE_ID}", "min_lifts"),  # was OverflowError binding it: 500
    (f"/api/streets.geojson?min_lifts={HUGE_ID}", "min_lifts"),
    (f"/api/error-rates?category=sac_ferme&min_lifts={HUGE_ID}", "min_lifts"),
    ("/api/error-rates?category=sac_ferme&stream=plastic", "stream"),  # was an empty 200
    ("/api/error-rates?category=VERRE", "category"),
    ("/api/reminders/campaigns/1?status=bogus", "status"),  # was an empty list of items
])
def test_street_filters_are_checked_alike(api: Server, request_path: str, says: str) -> None:
    response = api.client.get(request_path, headers=api.token("admin"))
    assert response.status_code == 422 and says in response.text, response.text


@pytest.mark.parametrize("raw", ["2026-12-05T01:22:41|5", f"2026-12-05T01:22:41+00:00|{HUGE_ID}",
                                 "2026-12-05T01:22:41+00:00|0"])
def test_a_forged_lift_cursor_is_a_422(api: Server, raw: str) -> None:
    """A cursor without a time zone compared naive with aware times, one past 64 bits overflowed: 500s."""
    import base64

    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = api.client.get("/api/lifts", params={"cursor": cursor}, headers=api.token("admin"))
    assert response.status_code == 422 and "invalid cursor" in response.text, response.text


def test_a_nul_byte_in_a_campaign_file_name_is_a_404(api: Server) -> None:
    response = api.client.get("/api/reminders/campaigns/1/files/a%00.pdf", headers=api.token("admin"))
    assert response.status_code == 404, response.text


def test_a_street_page_for_no_street_is_a_404(api: Server) -> None:
    admin = api.token("admin")
    assert api.client.get("/rues/99999999", headers=admin).status_code == 404
    assert api.client.get(f"/rues/{HUGE_ID}", headers=admin).status_code == 422


def test_a_dead_letter_reason_no_letter_can_have_is_a_422(api: Server) -> None:
    """A misspelt reason answered an empty list, as if nothing had been refused for it."""
    manager = api.token("manager")
    response = api.client.get("/api/dead-letters", params={"reason": "unknown-truck"}, headers=manager)
    assert response.status_code == 422 and "one of invalid_json" in response.text, response.text
    assert api.client.get("/api/dead-letters", params={"reason": "bad_jpeg"}, headers=manager).status_code == 200


def test_the_dead_letter_reasons_are_the_ones_the_api_documents() -> None:
    import re

    from base.paths import REPO_ROOT
    from server.ingest.inbox import DEAD_LETTER_REASONS

    text = (REPO_ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    listed = text.split("lands in the dead letters with a reason code:", 1)[1].split("\n\n", 1)[0]
    assert tuple(re.findall(r"`([a-z_]+)`", listed)) == DEAD_LETTER_REASONS
