"""A truck's config reaches it only once the database allows what it asks, whoever publishes it.

A truck downloads its model the moment it reads its config, and the server lets it only when the
truck's assignment is committed (``_asked``). The broker here is a recorder that, as each config
goes out, reads in a fresh session what a truck downloading at that moment would be allowed. No
truck process or broker: the app runs with its ingest off and the recorder as its publisher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.config import ServerSettings, load_settings
from server.fleet.models import Assignment, FleetModel, Rollout
from server.fleet.rollout import RolloutTask, publish_pending, start
from server.ingest.models import Truck
from server.web.auth import create_token

TRUCKS = ["benne-a", "benne-b"]


class Recorder:
    """The broker: each config sent, with the model the truck's assignment named at that moment."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions, self.down = sessions, False
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    def __call__(self, truck_id: str, config: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable (test)")
        with self.sessions() as session:  # what GET /api/models/{sha}.onnx reads for the truck's token
            assigned = session.get(Assignment, truck_id)
            self.sent.append((truck_id, config, assigned.sha256 if assigned is not None else None))

    def refused_downloads(self) -> list[tuple[str, str, str | None]]:
        return [
            (truck, config["model"]["sha256"][:8], (visible or "none")[:8])
            for truck, config, visible in self.sent
            if config["model"]["sha256"] != visible
        ]


@dataclass
class Api:
    settings: ServerSettings
    client: TestClient
    sessions: sessionmaker[Session]
    broker: Recorder
    admin: dict[str, str]
    models: list[str]

    def put(self, truck_id: str, body: dict[str, Any]) -> Any:
        return self.client.put(f"/api/trucks/{truck_id}/config", json=body, headers=self.admin)

    def stored(self, truck_id: str) -> tuple[dict[str, Any] | None, datetime | None]:
        with self.sessions() as session:
            truck, assigned = session.get(Truck, truck_id), session.get(Assignment, truck_id)
            return (truck.config if truck else None), (assigned.published_at if assigned else None)


def _model(version: str) -> FleetModel:
    return FleetModel(
        sha256=hashlib.sha256(version.encode()).hexdigest(),
        name="trivue-waste",
        version=version,
        quantised=False,
        names=["bag"],
        imgsz=[320, 320],
        metrics={},
        card=None,
        size_bytes=1,
        published_at=datetime.now(UTC),
        published_by="test",
    )


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    from server.app import create_app

    # The rollout task of the app waits an hour: each test runs its rounds itself.
    settings = load_settings(
        env={},
        data_dir=tmp_path / "data",
        database_url=database_url,
        ingest_enabled=False,
        known_trucks=TRUCKS,
        rollout_check_s=3600,
        cookie_secure=False,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        sessions = app.state.ctx.sessions
        broker = Recorder(sessions)
        app.state.ctx = dataclasses.replace(app.state.ctx, publish_config=broker)
        with sessions() as session:
            rows = [_model("2027.01"), _model("2027.02")]
            session.add_all(rows)
            token = create_token(session, "admin", "test-admin")
            session.commit()
            models = [row.sha256 for row in rows]
        yield Api(settings, client, sessions, broker, {"Authorization": f"Bearer {token}"}, models)


def test_every_config_goes_out_once_its_model_is_allowed(api: Api) -> None:
    """Before, the routes and the rollout task published first and committed after: a truck that
    downloaded within those milliseconds got 403 "not asked to run model", reported a refusal, and
    a canary's refusal halted the rollout (tests/fleet/test_rollout.py failed so, once)."""
    old, new = api.models
    assert api.put("benne-a", {"model": old}).status_code == 200
    rollout = api.client.post(f"/api/models/{new}/rollout", json={"canary": 1}, headers=api.admin)
    assert rollout.status_code == 200 and rollout.json()["canary"] == ["benne-a"], rollout.text
    assert api.client.post(f"/api/models/{new}/confirm", headers=api.admin).status_code == 200
    with api.sessions() as session:  # a truck first heard of now: the task gives it the fleet's model
        session.add(
            Truck(truck_id="benne-c", status="online", status_at=datetime.now(UTC), last_seen_at=datetime.now(UTC))
        )
        session.commit()
    task = RolloutTask(api.settings, api.sessions, api.broker)
    assert any("benne-c joined the fleet" in line for line in task.run_once())
    assert api.client.post("/api/rollouts/rollback", headers=api.admin).status_code == 200
    sent = [(truck, config["model"]["sha256"]) for truck, config, _visible in api.broker.sent]
    assert sent == [("benne-a", old), ("benne-a", new), ("benne-b", new), ("benne-c", new), ("benne-a", old)], sent
    assert api.broker.refused_downloads() == []
    assert all(api.stored(truck)[1] is not None for truck in ("benne-a", "benne-b", "benne-c"))  # recorded


def test_a_change_stored_while_the_broker_is_away_goes_out_when_it_is_back(api: Api) -> None:
    """Stored first, the change stays: 202, published by the rollout task (``publish_pending``) once the
    broker answers. A change without a model has nothing to retry it: 503, nothing stored."""
    api.broker.down = True
    refused = api.put("benne-a", {"stream": "glass"})
    assert refused.status_code == 503 and api.stored("benne-a") == (None, None), refused.text
    model = api.models[0]
    accepted = api.put("benne-a", {"stream": "glass", "model": model})
    assert accepted.status_code == 202, accepted.text
    config, published_at = api.stored("benne-a")
    assert (config["config_version"], config["stream"], config["model"]["sha256"], published_at) == (
        accepted.json()["config_version"],
        "glass",
        model,
        None,
    )
    api.broker.down = False
    RolloutTask(api.settings, api.sessions, api.broker).run_once()
    truck, sent, visible = api.broker.sent[-1]
    assert (truck, sent["stream"], sent["model"]["sha256"], visible) == ("benne-a", "glass", model, model)
    assert api.stored("benne-a") == (sent, api.stored("benne-a")[1]) and api.stored("benne-a")[1] is not None


def test_publishing_a_pending_config_waits_for_a_change_in_progress(api: Api) -> None:
    """``publish_pending`` read the stored config, added the model and stored it back without the
    truck's row lock that a PUT holds: a PUT committing in between lost its change, in the database
    and in the retained message a truck gets after a reboot."""
    from server.fleet.locks import locked_truck

    api.broker.down = True
    assert api.put("benne-a", {"model": api.models[0]}).status_code == 202  # pending
    api.broker.down = False
    change = api.sessions()  # a PUT of conf 0.4, its row held, not yet committed
    truck = locked_truck(change, "benne-a")
    truck.config = {**(truck.config or {}), "conf": 0.4}
    change.flush()

    def task_round() -> None:
        with api.sessions() as session:
            publish_pending(session, api.broker)
            session.commit()

    thread = threading.Thread(target=task_round)
    thread.start()
    time.sleep(0.5)
    change.commit()
    change.close()
    thread.join(60)
    stored, published_at = api.stored("benne-a")
    assert published_at is not None and api.broker.sent[-1][1] == stored
    assert stored.get("conf") == 0.4, stored


def test_two_rollouts_started_at_once_leave_one_at_the_canary_stage(api: Api) -> None:
    """Nothing held the check for an open rollout: two started at the same moment both read none,
    and both stayed at the canary stage (each canary asked for its model, neither superseded)."""
    first, second = api.models
    held = api.sessions()
    start(held, api.settings, first, 1, "first")  # not committed yet

    def other() -> None:
        with api.sessions() as session:
            start(session, api.settings, second, 1, "second")
            session.commit()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(0.5)
    waited = thread.is_alive()
    held.commit()
    held.close()
    thread.join(60)
    with api.sessions() as session:
        states = {sha: state for sha, state in session.execute(select(Rollout.sha256, Rollout.state))}
    assert states == {first: "superseded", second: "canary"}, states
    assert waited  # the second start waited for the first to commit


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"conf": True}, "conf"),
        ({"min_track_frames": True}, "min_track_frames"),
        ({"conf": "0.4"}, "conf"),
        ({"min_track_frames": 2.0}, "min_track_frames"),
    ],
)
def test_a_boolean_or_a_string_is_not_a_number(api: Api, body: dict[str, Any], field: str) -> None:
    """``{"conf": true}`` was taken as conf 1.0: the truck then detected nothing and every lift counted
    clean, without a word. Numbers only, as JSON numbers; 0 and 1 stay allowed, as in the truck's file."""
    refused = api.put("benne-a", body)
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["detail"]
    assert error["loc"] == ["body", field] and error["input"] == body[field], error
    assert api.stored("benne-a") == (None, None)
    accepted = api.put("benne-a", {"conf": 1, "min_track_frames": 3})
    assert accepted.status_code == 200 and (accepted.json()["conf"], accepted.json()["min_track_frames"]) == (1, 3)
