"""The dashboard's pages refuse a truck's token as every API route behind them does (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server.web.auth import create_token
from tests.server.conftest import Server

PAGES = ("/carte", "/classement", "/flotte", "/alertes", "/qualite", "/annotation", "/rappels", "/rues/1", "/login",
         "/journal")


@pytest.fixture
def site(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def test_a_truck_token_gets_403_on_every_dashboard_page(site: Server) -> None:
    with site.sessions() as session:
        truck = {"Authorization": f"Bearer {create_token(session, 'truck', 'truck:benne-01', 'benne-01')}"}
        session.commit()
    viewer = site.token("viewer")
    for path in PAGES:
        refused = site.client.get(path, headers=truck, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "truck" in refused.json()["detail"]
        # A viewer still gets the page (the street page: 404, no street 1 here; /login sends it on).
        assert site.client.get(path, headers=viewer, follow_redirects=False).status_code in (200, 303, 404), path
    # The accessibility declaration is public: a truck's token reads it as anyone does, without a menu.
    public = site.client.get("/accessibilite", headers=truck)
    assert public.status_code == 200 and 'href="/classement"' not in public.text
