"""Who reads the lift-by-lift alert feed (docs/privacy.md, section 1): managers and admins only.

An alert is one lift (time to the second, street, truck): on a short street it is nearly one
household. Viewers keep the per-street alert count of ``/api/streets`` (under ``viewer_min_lifts``).
Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import Server

ROUTES = ("/api/alerts", "/api/alerts/stream")


@pytest.fixture
def site(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


@pytest.mark.parametrize("role", ["viewer", "annotator"])
def test_roles_below_manager_get_403_on_the_alert_feed_and_its_stream(site: Server, role: str) -> None:
    for path in ROUTES:
        refused = site.client.get(path, headers=site.token(role))
        assert refused.status_code == 403, (role, path, refused.status_code)
        assert "manager" in refused.json()["detail"]


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_admins_read_the_alert_feed(site: Server, role: str) -> None:
    answer = site.client.get("/api/alerts", headers=site.token(role))
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []


def test_the_alert_counts_per_street_stay_open_to_viewers(site: Server) -> None:
    # The aggregate a viewer keeps: /api/streets' ``alerts`` column, under viewer_min_lifts.
    answer = site.client.get("/api/streets", headers=site.token("viewer"))
    assert answer.status_code == 200, answer.text
