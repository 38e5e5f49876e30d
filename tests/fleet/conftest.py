"""A real fleet: ``trivue server`` (uvicorn, MQTT ingest, rollout task) on a free port, the ``trivue``
command against its settings file, and trucks that are ``trivue edge`` processes.

``database_url`` is the server tests' fixture: SQLite and PostgreSQL (a module may narrow it)."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from server.config import ServerSettings, load_settings
from tests.conftest import BrokerAddress, free_port
from tests.server.conftest import database_url, postgres_server_url  # noqa: F401  (fixtures)


@dataclass
class Fleet:
    settings: ServerSettings
    config: Path  # the settings file the ``trivue`` commands read
    url: str
    sessions: sessionmaker[Session]

    def cli(self, *args: str) -> tuple[int, str, str]:
        """``trivue ARGS --config <settings>`` in this process: (exit code, stdout, stderr)."""
        from trivue.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "--config", str(self.config)])
        return code, out.getvalue(), err.getvalue()

    def token(self, role: str, truck_id: str | None = None) -> str:
        args = ["tokens", "create", "--role", role] + (["--truck-id", truck_id] if truck_id else [])
        code, out, err = self.cli(*args)
        assert code == 0, err
        return out.strip()

    def publish(self, model: Path) -> str:
        code, out, err = self.cli("models", "publish", str(model))
        assert code == 0, err
        return out.strip()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def fleet(tmp_path: Path, mqtt_broker: BrokerAddress, database_url: str,  # noqa: F811
          request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """The server; a test module's ``FLEET_SETTINGS`` (a dict) replaces settings given here."""
    import uvicorn

    from server.app import create_app

    tag = uuid.uuid4().hex[:10]
    values = {"data_dir": str(tmp_path / "server"), "database_url": database_url,
              "broker_url": mqtt_broker.url, "topic_prefix": f"test-{tag}/v1", "mqtt_client_id": f"trivue-test-{tag}",
              "mqtt_protocol": "5" if mqtt_broker.kind == "mosquitto" else "3.1.1", "ingest_batch_wait_ms": 20,
              "cookie_secure": False, "rollout_check_s": 0.2, "rollout_canary_lifts": 2,
              **getattr(request.module, "FLEET_SETTINGS", {})}
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump(values))
    settings = load_settings(config, env={})
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the server to start", 20)
    ctx = app.state.ctx
    assert ctx.ingest.wait_connected(10), "ingest did not connect to the broker"
    try:
        yield Fleet(settings, config, f"http://127.0.0.1:{port}", ctx.sessions)
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def rollout_rounds(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``wait(n)``: returns once the server's rollout task has run ``n`` whole rounds begun after the call.

    A fixed sleep of "five rounds" before checking that nothing happened checked nothing on a loaded
    machine, where the task's thread may not have run once in that time."""
    import server.fleet.rollout as rollout

    begun = [0]
    advance = rollout.advance

    def counted(session: Session, settings: ServerSettings) -> list[str]:
        if threading.current_thread().name == "trivue-rollout-check":  # the task's thread (server.periodic)
            begun[0] += 1
        return advance(session, settings)

    monkeypatch.setattr(rollout, "advance", counted)

    def wait(rounds: int) -> None:
        # A round begins after the previous one committed and published: n + 1 begun since the call
        # means n whole rounds, none of them under way when it was made.
        target = begun[0] + rounds + 1
        wait_until(lambda: begun[0] >= target, f"{rounds} rounds of the rollout task")

    return wait


@pytest.fixture
def trucks(fleet: Fleet, tmp_path: Path) -> Iterator[Any]:
    """``trivue edge`` processes (``tests.fleet.trucks.Trucks``), all stopped at the end of the test."""
    from tests.fleet.trucks import Trucks  # it builds on this module's Fleet

    fleet_trucks = Trucks(fleet, tmp_path / "trucks")
    try:
        yield fleet_trucks
    finally:
        for truck in fleet_trucks.started:
            truck.stop()


def stats_of(fleet: Fleet, truck_id: str) -> dict[str, Any]:
    from server.ingest.models import Truck

    with fleet.sessions() as session:
        truck = session.get(Truck, truck_id)
        return dict(truck.stats or {}) if truck is not None else {}


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:2000]


# The app with its ingest off and a recorder as its broker, for the tests of the fleet's API alone.
from tests.fleet.test_config_publish import api  # noqa: E402, F401  (fixture)
