"""The OpenAPI document: every path the API has always had, each JSON answer with its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import load_settings

# The HTTP contract: these operations exist (issue 15 moved the code behind them, not them).
OPERATIONS = {
    ("get", "/api/health"), ("get", "/api/streets"), ("get", "/api/streets.geojson"),
    ("get", "/api/streets/{street_id}"), ("get", "/api/lifts"), ("get", "/api/lifts/{event_id}"),
    ("get", "/api/lifts/{event_id}/evidence.jpg"), ("get", "/api/trucks"), ("put", "/api/trucks/{truck_id}/config"),
    ("get", "/api/audit"), ("get", "/api/dead-letters"), ("get", "/metrics"), ("post", "/api/login"),
    ("post", "/api/logout"), ("get", "/api/me"), ("get", "/api/network.geojson"), ("get", "/api/error-rates"),
    ("get", "/api/alerts"), ("get", "/api/alerts/stream"), ("get", "/api/data-quality"),
    ("get", "/api/reminders/rules"), ("get", "/api/reminders/plan"), ("post", "/api/reminders/campaigns"),
    ("get", "/api/reminders/campaigns"), ("get", "/api/reminders/templates/preview"),
    ("get", "/api/reminders/templates"), ("get", "/api/reminders/campaigns/{campaign_id}"),
    ("post", "/api/reminders/items/{item_id}/review"), ("get", "/api/reminders/items/{item_id}/preview"),
    ("post", "/api/reminders/campaigns/{campaign_id}/send"),
    ("get", "/api/reminders/campaigns/{campaign_id}/files/{name}"),
    ("get", "/api/reminders/campaigns/{campaign_id}/route-sheet.pdf"),
    ("get", "/api/reminders/campaigns/{campaign_id}/effect"), ("get", "/api/reminders/false-detections"),
    ("get", "/api/reminders/households"), ("post", "/api/reminders/households/import"),
    ("post", "/api/reminders/households/{key}/opt-out"), ("delete", "/api/reminders/households/{key}"),
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data: Path = tmp_path_factory.mktemp("openapi")
    settings = load_settings(None, env={}, data_dir=data, dev=True)
    return create_app(settings, start_ingest=False).openapi()


def test_every_path_is_kept(document: dict[str, Any]) -> None:
    found = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert OPERATIONS - found == set()


def test_every_json_answer_has_its_schema(document: dict[str, Any]) -> None:
    untyped = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            content = ok.get("content", {})
            schema = (content.get("application/json") or content.get("application/geo+json") or {}).get("schema")
            if schema is None:
                continue  # a file, a PDF, a CSV, Prometheus text or an event stream
            target = schema.get("items", schema)
            if "$ref" not in target:
                untyped.append(f"{method.upper()} {path}: {schema}")
    assert untyped == []
