"""The open data routes stream their answer in pieces of rows, the same bytes as the files.

``GET /api/opendata/streets.{csv,geojson}`` once built the whole body in memory (tens of MB for a
métropole's history, once per viewer downloading); it now sends it in pieces. The pieces, joined,
must be exactly ``to_csv`` / ``to_geojson`` (what ``trivue opendata export`` writes), and errors
(a bad period: 422) must still come before any byte.
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.opendata.export import (
    OpenDataQuery,
    Publication,
    csv_pieces,
    geojson_pieces,
    publication,
    to_csv,
    to_geojson,
)
from server.web.auth import create_token
from tests.server.conftest import RennesDatabase
from tests.server.streets_fixture import OnStreet
from tests.server.test_opendata import city as city  # the lifts on Rennes streets (fixture)

UNTIL = "2026-11-30"


def _token(rennes_db: RennesDatabase) -> str:
    with rennes_db.sessions() as session:
        token = create_token(session, "viewer", "portail open data")
        session.commit()
    return token


def _body_messages(app: Any, path: str, query: str, token: str) -> tuple[int, list[bytes]]:
    """The status and each ``http.response.body`` message of one request, as the server sends them."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:  # the client stays connected until the answer is over
            await anyio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # In a thread of its own: a worker that ran a browser test before this one still holds the
    # session's Playwright loop on its main thread, where anyio.run refuses to start a second one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(anyio.run, app, scope, receive, send).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]


@pytest.mark.parametrize("kind", ["csv", "geojson"])
def test_the_routes_stream_the_very_bytes_of_the_files(
    rennes_db: RennesDatabase, city: dict[str, OnStreet], kind: str
) -> None:
    settings = rennes_db.settings.model_copy(update={"ingest_enabled": False})
    token = _token(rennes_db)
    with rennes_db.sessions() as session:
        pub = publication(session, OpenDataQuery("month", settings.opendata_min_lifts, until=date.fromisoformat(UNTIL)))
    assert pub.count == 3  # October and November of "busy", October of "ten": a database with data
    expected = (to_csv(pub) if kind == "csv" else to_geojson(pub)).encode()

    client = TestClient(create_app(settings, start_ingest=False))
    response = client.get(
        f"/api/opendata/streets.{kind}", params={"until": UNTIL}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.content == expected
    assert "content-length" not in response.headers  # a streamed answer: its length is not known up front

    # As the server sends it: several body messages (the header or head first), joined the same bytes.
    status, pieces = _body_messages(
        create_app(settings, start_ingest=False), f"/api/opendata/streets.{kind}", f"until={UNTIL}", token
    )
    assert status == 200 and len(pieces) > 1
    assert b"".join(pieces) == expected


def test_a_bad_period_is_refused_before_any_byte(rennes_db: RennesDatabase, city: dict[str, OnStreet]) -> None:
    app = create_app(rennes_db.settings.model_copy(update={"ingest_enabled": False}), start_ingest=False)
    status, pieces = _body_messages(app, "/api/opendata/streets.csv", "until=2026-11-29", _token(rennes_db))
    assert status == 422
    assert b"until 2026-11-29: the open data publishes whole months only, end on 2026-11-30" in b"".join(pieces)


@pytest.mark.parametrize("rows_per_piece", [1, 2, 3, 1000])
@pytest.mark.parametrize("period", ["month", "year"])
def test_pieces_join_to_the_file_at_any_piece_size(
    rennes_db: RennesDatabase, city: dict[str, OnStreet], rows_per_piece: int, period: str
) -> None:
    with rennes_db.sessions() as session:
        pub = publication(session, OpenDataQuery(period, 10))
    assert pub.count > 1
    first = pub.streets[0]
    one = [replace(first, cells=first.cells[:1])]
    for part in (pub, Publication(one, pub.suppressed), Publication([], pub.suppressed)):  # several rows, one, none
        rows = list(part.records())
        assert len(rows) == part.count
        csv_parts = list(csv_pieces(part, rows_per_piece))
        assert "".join(csv_parts) == to_csv(part)
        assert list(csv.DictReader(io.StringIO(to_csv(part)))) == [  # a row each, its values as published
            {k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
        assert len(csv_parts) == 1 + -(-len(rows) // rows_per_piece)  # the header, then a piece per rows_per_piece
        geojson_parts = list(geojson_pieces(part, rows_per_piece))
        assert "".join(geojson_parts) == to_geojson(part)
        assert [f["properties"] for f in json.loads(to_geojson(part))["features"]] == rows
        assert len(geojson_parts) == 2 + -(-len(rows) // rows_per_piece)
