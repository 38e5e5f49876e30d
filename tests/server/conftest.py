"""Server test fixtures: the same tests on SQLite and PostgreSQL, a real broker, the real app factory.

``database_url`` runs every test that asks for it twice: on a SQLite file in ``tmp_path`` and on a
PostgreSQL database created for this test session (``trivue_test_<random>``, dropped at the end;
each test gets an empty ``public`` schema). PostgreSQL runs are skipped when 127.0.0.1:5432 is
unreachable. Topic prefixes and client ids are unique per test: the Mosquitto is shared.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.config import ServerSettings, load_settings
from server.web.auth import add_user, create_token
from tests.conftest import BrokerAddress, free_port
from tests.server.streets_db import postgres_database

REMINDERS_TODAY = date(2026, 11, 20)  # the reminders' test city is seeded as of this day
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def mqtt_broker(mqtt_broker: BrokerAddress) -> Iterator[BrokerAddress]:
    """The suite's broker, or the embedded one with TRIVUE_TEST_EMBEDDED_BROKER=1 (CI without Mosquitto)."""
    if os.environ.get("TRIVUE_TEST_EMBEDDED_BROKER") != "1":
        yield mqtt_broker
        return
    from tests.conftest import free_port
    from trivue.broker import EmbeddedBroker

    port = free_port()
    with EmbeddedBroker("127.0.0.1", port):
        yield BrokerAddress("127.0.0.1", port, "embedded")


@pytest.fixture(scope="session")
def postgres_server_url(postgres_available: bool) -> Iterator[str | None]:
    """A fresh database for this test session, or None without PostgreSQL."""
    if not postgres_available:
        yield None
        return
    with postgres_database("trivue_test") as url:
        yield url


def _empty_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trivue.db'}"
    url = request.getfixturevalue("postgres_server_url")
    if url is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    _empty_postgres(url)
    return url


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str, mqtt_broker: BrokerAddress) -> Callable[..., ServerSettings]:
    """Settings on this test's database and broker with a unique topic prefix and client id."""
    tag = uuid.uuid4().hex[:10]

    def make(**overrides: Any) -> ServerSettings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data", "database_url": database_url, "broker_url": mqtt_broker.url,
            "topic_prefix": f"test-{tag}/v1", "mqtt_client_id": f"trivue-test-{tag}",
            "mqtt_protocol": "5" if mqtt_broker.kind == "mosquitto" else "3.1.1",
            "ingest_batch_wait_ms": 20, "cookie_secure": False,
            # Ingest refuses lifts older than the retention (``expired``): the tests' fixed 2026 dates
            # must stay inside it for years, whatever day the suite runs on.
            "retention_days": 3650,
            # The same for photos: the retention task purges at start-up, racing a test's inserts, and
            # took the photos of 2026-11-02 once they were 30 days old (flaky from 2026-12-02).
            "evidence_retention_days": 3650,
        }
        values.update(overrides)
        return load_settings(env={}, **values)

    return make


@dataclass(frozen=True)
class RennesDatabase:
    settings: ServerSettings
    sessions: sessionmaker[Session]


@pytest.fixture
def rennes_db(make_settings: Callable[..., ServerSettings]) -> Iterator[RennesDatabase]:
    """This test's database, migrated, with the Rennes centre streets imported (no app running)."""
    from server.db import make_engine
    from server.migrate import upgrade_database
    from tests.server.streets_fixture import import_rennes

    settings = make_settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        import_rennes(sessions)
        yield RennesDatabase(settings, sessions)
    finally:
        engine.dispose()


@dataclass
class Server:
    """An app from ``create_app`` behind a TestClient, with its ingest running when enabled."""

    settings: ServerSettings
    client: TestClient
    sessions: sessionmaker[Session]
    broker: BrokerAddress

    @property
    def ingest(self) -> Any:
        return self.client.app.state.ctx.ingest  # type: ignore[attr-defined]

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        publish(self.broker, [(f"{self.settings.topic_prefix}/{topic}", payload)], retain=retain)

    def token(self, role: str) -> dict[str, str]:
        with self.sessions() as session:
            token = create_token(session, role, f"test-{role}")
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    def user(self, name: str, role: str) -> None:
        with self.sessions() as session:
            add_user(session, name, PASSWORD, role)
            session.commit()


def publish(broker: BrokerAddress, messages: list[tuple[str, bytes | str]], retain: bool = False) -> None:
    """Publish with a real paho client at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(200)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def run_server(mqtt_broker: BrokerAddress) -> Callable[..., Any]:
    """``with run_server(settings) as server:`` starts the app (and its ingest), stops it on exit."""

    @contextmanager
    def run(settings: ServerSettings, **kwargs: Any) -> Iterator[Server]:
        app = create_app(settings, **kwargs)
        with TestClient(app) as client:
            server = Server(settings, client, app.state.ctx.sessions, mqtt_broker)
            if server.ingest is not None:
                assert server.ingest.wait_connected(10), "ingest did not connect to the broker"
            yield server

    return run


@pytest.fixture
def server(make_settings: Callable[..., ServerSettings], run_server: Callable[..., Any]) -> Iterator[Server]:
    """A running server with ingest, no dev mode."""
    with run_server(make_settings()) as running:
        yield running


@pytest.fixture
def smtp_relay() -> Iterator[tuple[Any, int]]:
    """A plain local SMTP relay (``security: none``) on a free port: (``Relay`` handler, port)."""
    from aiosmtpd.controller import Controller

    from tests.server.reminders_city import Relay

    handler, port = Relay(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Any]:
    """The reminders' test city (``tests.server.reminders_city``) on SQLite and PostgreSQL."""
    from tests.server.reminders_city import engine_for, seed_city

    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield seed_city(engine, tmp_path, REMINDERS_TODAY)


@pytest.fixture(autouse=True)
def _sms_hours_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """SMS go at once in the tests that do not test their hours: a run at night or on a Sunday must not
    hold them (``server.reminders.sms_hours``; its own tests, in test_reminders_mailroom.py, undo this)."""
    from server.reminders import sms_hours

    monkeypatch.setattr(sms_hours, "sms_allowed", lambda moment, zone: True)
