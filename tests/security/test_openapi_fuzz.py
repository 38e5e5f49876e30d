"""schemathesis against the app's own OpenAPI spec: no generated request gets a 500, and every answer
is as the spec says (its status, body schema and content type are documented).

Every operation is called as an admin (the deepest code paths) with requests generated from the
spec. Bounded (``MAX_EXAMPLES`` per operation, derandomized so a failure replays) to fit CI
time. SQLite only: PostgreSQL adds time, not new routes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import Server

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# An event stream never ends: schemathesis reads it until its read timeout (10 s by default) and
# checks the events sent by then. The alert stream's first ping comes after 15 s and the test's
# database holds no alert, so 10 s read nothing more than 2 s do (its status, headers and content
# type are checked alike; its polls, one a second, still run): 8 calls of 10 s were 80 of the
# test's 88 s on CI, waiting.
STREAM_READ_S = 2.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'trivue.db'}"


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    """The app without MQTT ingest; truck configs go to a list instead of the broker, so that route
    is exercised rather than answering 503."""
    with run_server(make_settings(ingest_enabled=False)) as server:
        published: list[tuple[str, dict[str, Any]]] = []
        app = server.client.app
        app.state.ctx = dataclasses.replace(app.state.ctx, publish_config=lambda t, c: published.append((t, c)))
        yield server


def without_lifespan(app: Any) -> Any:
    """The app as already started by the fixture: schemathesis' client must not start it again."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    return asgi


@pytest.fixture
def admin(api: Server) -> dict[str, str]:
    return api.token("admin")


REMINDERS = "/api/reminders"
GROUPS = [
    pytest.param("core", id="core"),
    pytest.param("reminders", id="reminders"),
]


def operations(api: Server, group: str) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(api.client.app))
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path.startswith(REMINDERS) == (group == "reminders")]


def read_timeout(api: Server, operation: Any) -> dict[str, float]:
    """``STREAM_READ_S`` for an operation documented as answering an event stream, else schemathesis' own."""
    responses = api.client.app.openapi()["paths"][operation.path][operation.method.lower()]["responses"]
    streams = any("text/event-stream" in answer.get("content", {}) for answer in responses.values())
    return {"timeout": STREAM_READ_S} if streams else {}


@pytest.mark.heavy(cpu_s=20)  # was 90 while the alert stream was read 10 s a call
@pytest.mark.parametrize("group", GROUPS)
def test_no_generated_request_gets_a_server_error(api: Server, admin: dict[str, str], group: str) -> None:
    """One hypothesis run per operation (schemathesis' pytest plugin does not load under pytest 9)."""
    failures: list[str] = []
    tried = []
    for operation in operations(api, group):

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            body = case.body if isinstance(case.body, dict | list | str) else ""
            where = f"{case.method} {case.formatted_path} {case.query or ''} {str(body)[:80]}"
            try:
                response = case.call(headers=admin, **read_timeout(api, case.operation))
            except Exception as error:  # the test client re-raises what would be a 500
                failures.append(f"{where} -> {type(error).__name__}: {error}")
                return
            try:  # no 500, and every answer as the document says (status, body, content type)
                case.validate_response(response, checks=CHECKS, headers=admin)
            except BaseException as error:  # schemathesis' FailureGroup is a BaseExceptionGroup
                for failure in getattr(error, "exceptions", [error]):
                    failures.append(f"{where} -> {response.status_code}: {type(failure).__name__}: "
                                    f"{str(failure)[:200]}")

        call()
        tried.append(operation.label)
    assert len(tried) >= 5, tried  # the spec was read: the routes are in it
    assert not failures, "server errors or answers unlike the document:\n" + "\n".join(sorted(set(failures)))
