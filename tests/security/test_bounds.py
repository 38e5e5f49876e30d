"""Ids and dates at the edges of what the database and ``datetime`` can hold: 4xx naming the field, never 500.

A 64-bit column cannot hold 2**64 (SQLite raises ``OverflowError`` while binding, PostgreSQL a
``DataError``), and date arithmetic near year 1 or 9999 overflows. Every route of the OpenAPI spec
is called with such values, on SQLite and PostgreSQL, as an admin (the deepest code paths).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import Server

HUGE_ID = 2**64
DATES = ["0001-01-01", "0999-12-31", "9999-12-31"]
DATETIMES = ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        server.client.app.state.ctx = _no_publish(server.client.app.state.ctx)
        yield server


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


def _call(api: Server, method: str, path: str, query: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    body = {} if method in ("POST", "PUT") else None
    try:
        response = api.client.request(method, path, params=query, json=body, headers=headers)
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
