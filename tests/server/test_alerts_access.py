"""Who reads the lift-by-lift alert feed (docs/privacy.md, section 1): managers and admins only.

An alert is one lift (time to the second, street, truck): on a short street it is nearly one
household. Viewers keep the per-street alert count of ``/api/streets`` (under ``viewer_min_lifts``).
Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.streets.models import Street
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.test_api import seed
from tests.server.test_overrule import STREET, OneStreet  # every lift on street 7

ROUTES = ("/api/alerts", "/api/alerts/stream")


@pytest.fixture
def site(make_settings: Any, run_server: Any) -> Iterator[Server]:
    """A street with one battery (an alert) among 3 lifts, all visible to a viewer (viewer_min_lifts 1)."""
    with run_server(make_settings(ingest_enabled=False, viewer_min_lifts=1)) as server:
        with server.sessions() as session:
            session.add(
                Street(
                    id=STREET,
                    name="Rue des Alertes",
                    commune="Rennes",
                    name_key="rue des alertes",
                    geometry='{"type":"MultiLineString","coordinates":[]}',
                    length_m=80.0,
                )
            )
            session.commit()
        now = datetime.now(UTC) - timedelta(hours=1)
        seed(
            server,
            [
                lift_event(counts={"battery": 1, "bottle": 1}, at=now, sequence=1),
                lift_event(counts={"bottle": 2}, at=now + timedelta(minutes=1), sequence=2),
                lift_event(counts={"glass": 1}, at=now + timedelta(minutes=2), sequence=3),
            ],
            OneStreet(),
        )
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
    assert [item["street_id"] for item in answer.json()["items"]] == [STREET]  # the battery's lift


def test_the_alert_counts_per_street_stay_open_to_viewers(site: Server) -> None:
    # The aggregate a viewer keeps: /api/streets' ``alerts`` column, under viewer_min_lifts.
    answer = site.client.get("/api/streets", headers=site.token("viewer"))
    assert answer.status_code == 200, answer.text
    row = next(s for s in answer.json()["streets"] if s["street_id"] == STREET)
    assert (row["lifts"], row["alerts"]) == (3, 1)
