"""A lift without its ``event_id`` is refused, never counted at each re-delivery.

Found by an evaluator building events from the published JSON Schema: ``event_id`` was optional
there, and the reader gave a lift without one a fresh random id, so the same bytes sent twice
(an outbox re-send, an MQTT re-delivery) were stored and counted twice in the street figures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.ingest.models import Lift
from tests.server.conftest import Server, publish, wait_for
from tests.server.events import lift_event
from vision.schema import json_schema


def _lifts(server: Server) -> int:
    with server.sessions() as session:
        return session.scalar(select(func.count()).select_from(Lift)) or 0


def test_a_lift_without_event_id_is_a_dead_letter_not_two_lifts(make_settings: Any, run_server: Any) -> None:
    with run_server(make_settings()) as server:
        at = datetime.now(UTC) - timedelta(hours=2)
        body = json.loads(lift_event("benne-01", at=at, sequence=7).to_json())
        del body["event_id"]
        raw = json.dumps(body).encode()
        topic = f"{server.settings.topic_prefix}/benne-01/lift"
        publish(server.broker, [(topic, raw), (topic, raw)])  # the truck's outbox sends it again
        publish(server.broker, [(topic, lift_event("benne-01", at=at, sequence=8).to_json())])
        wait_for(lambda: _lifts(server) >= 1, "the good lift after the two without an id")
        wait_for(lambda: server.client.get("/api/dead-letters", headers=server.token("manager")).json()["counts"],
                 "the dead letters")
        letters = server.client.get("/api/dead-letters", headers=server.token("manager")).json()
        assert _lifts(server) == 1
        assert letters["counts"] == {"schema": 2}
        assert all(item["detail"].startswith("event_id: ") for item in letters["items"]), letters["items"]


def test_the_published_schema_requires_event_id() -> None:
    assert "event_id" in json_schema()["required"]
