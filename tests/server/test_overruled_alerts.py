"""A lift whose judgement a manager overruled is no alert (SQLite and PostgreSQL).

The overrule docs say such a lift counts clean, "no alert", in every figure, the streets' alerts
included; yet the alerts page (``/api/alerts`` and its stream) went on listing its battery as an
alert. Left out, as a lift not judged is; the overrule undone, it is an alert again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.web.alert_feed import StreamCursor, Window, alert_rows
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.test_view_unusable_figures import write


@pytest.fixture
def stored(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def alerts(server: Server) -> tuple[list[str], list[str], list[str]]:
    """The alert lifts' event ids: the page's list, a stream resumed from before every lift, and the
    shared window of a settled feed."""
    page = server.client.get("/api/alerts", headers=server.token("manager")).json()
    with server.sessions() as session:
        streamed = StreamCursor(0).next_rows(session, Window(None, [], False))
        window = alert_rows(session, 0, 100)
    return ([a["event_id"] for a in page["items"]], [r["event_id"] for r in streamed],
            [r["event_id"] for r in window])


def test_an_overruled_lift_is_no_alert_until_the_overrule_is_undone(stored: Server) -> None:
    now = datetime.now(UTC)
    wrong = lift_event("benne-01", counts={"battery": 1}, sequence=1, at=now - timedelta(minutes=2))
    right = lift_event("benne-01", counts={"gas_cylinder": 1}, sequence=2, at=now - timedelta(minutes=1))
    write(stored, [wrong, right])
    both = [str(wrong.event_id), str(right.event_id)]
    assert alerts(stored) == (both[::-1], both, both)

    manager = stored.token("manager")
    url = f"/api/lifts/{wrong.event_id}/overrule"
    ruled = stored.client.post(url, headers=manager, json={"reason": "une télécommande, pas une batterie"})
    assert ruled.status_code == 200, ruled.text
    assert alerts(stored) == ([both[1]], [both[1]], [both[1]])

    undone = stored.client.delete(url, headers=manager)
    assert undone.status_code == 200, undone.text
    assert alerts(stored) == (both[::-1], both, both)
