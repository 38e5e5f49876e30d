"""The real server (uvicorn on a free port, real MQTT ingest) over a seeded city, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``), driven by Playwright with
``executable_path``: no browser download. Screenshots go to ``$TRIVUE_SCREENSHOT_DIR`` or a pytest
temporary folder, for a person (or CI artifacts) to look at.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.config import ServerSettings, load_settings
from server.db import make_engine
from server.ingest.models import Truck
from server.migrate import upgrade_database
from tests.conftest import BrokerAddress, free_port
from tests.dashboard.seed import PASSWORD, SeededCity, seed_city

SILENT_TRUCK = "benne-09"
PHOTOS = 4


@dataclass
class LiveServer:
    url: str
    settings: ServerSettings
    city: SeededCity
    broker: BrokerAddress
    sessions: sessionmaker[Any]
    shots: Path

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        """Publish one message with a real MQTT client (QoS 1, waits for PUBACK)."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            client.publish(f"{self.settings.topic_prefix}/{topic}", payload, qos=1, retain=retain).wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()

    def api(self, path: str, user: str = "gestionnaire", **params: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            client.post("/api/login", json={"name": user, "password": PASSWORD}).raise_for_status()
            response = client.get(path, params=params)
            response.raise_for_status()
            return response.json()

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := check():
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")


def _silent_truck(sessions: sessionmaker[Any]) -> None:
    # A truck last heard two hours ago: what the fleet page must flag (time cannot be faked over MQTT).
    seen = datetime.now(UTC) - timedelta(hours=2)
    stats = {"truck_id": SILENT_TRUCK, "sent_at": seen.isoformat(), "uptime_s": 5000, "outbox_depth": 37,
             "inference_ms": 140.0, "fps": 6.5, "gps_fix_age_s": 3.0, "lifts_total": 812,
             "model": {"name": "trivue-waste", "version": "2026.10.2"}, "stream": "recyclables"}
    with sessions() as db:
        db.add(Truck(truck_id=SILENT_TRUCK, status="online", status_at=seen, last_seen_at=seen,
                     stats=stats, stats_at=seen))
        db.commit()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("TRIVUE_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("dashboard-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, mqtt_broker: BrokerAddress, shared_dir: Path,
                screenshot_dir: Path) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("dashboard-server")
    port = free_port()
    settings = load_settings(env={}, data_dir=data_dir, broker_url=mqtt_broker.url, port=port,
                             topic_prefix=f"trivue-test/{uuid.uuid4().hex[:8]}",
                             mqtt_client_id=f"trivue-dash-{uuid.uuid4().hex[:8]}", cookie_secure=False,
                             ingest_batch_wait_ms=20,
                             mqtt_protocol="5" if mqtt_broker.kind == "mosquitto" else "3.1.1")
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        city = seed_city(db, shared_dir / "geodata" / "rennes-streets.osm.geojson", settings.zone)
    _silent_truck(sessions)
    app = create_app(settings, engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", settings, city, mqtt_broker, sessions, screenshot_dir)
    live.wait_for(lambda: server.started, "the server to start")
    try:
        _publish_evidence(live, shared_dir)
        yield live
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


def _publish_evidence(live: LiveServer, shared_dir: Path) -> None:
    """Photos of the newest contaminated lifts of the dirtiest street, through the real MQTT ingest."""
    from server.ingest.models import Evidence

    photos = sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))
    newest = live.city.contaminated[live.city.streets["dirty"][0]][-PHOTOS:]
    for (event_id, truck_id), photo in zip(newest, photos, strict=False):
        live.publish(f"{truck_id}/evidence/{event_id}", photo.read_bytes())

    def stored() -> bool:
        with live.sessions() as db:
            return db.query(Evidence).count() >= len(newest)

    live.wait_for(stored, "evidence photos to be stored by the ingest")


@dataclass
class Browser:
    """A Chromium page that records console errors and failed requests, and takes named screenshots."""

    page: Any
    server: LiveServer
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # console errors a test provokes on purpose

    def unexpected_errors(self) -> list[str]:
        remaining = list(self.expected)
        found = []
        for error in self.errors:
            if error in remaining:
                remaining.remove(error)
            else:
                found.append(error)
        return found

    def goto(self, path: str) -> None:
        self.page.goto(self.server.url + path)

    def login(self, user: str = "gestionnaire", path: str = "/carte") -> None:
        self.goto(path)
        self.page.wait_for_url("**/login?next=*")
        self.page.get_by_label("Identifiant").fill(user)
        self.page.get_by_label("Mot de passe").fill(PASSWORD)
        self.page.get_by_role("button", name="Se connecter").click()
        self.page.wait_for_url(f"**{path}*")

    def shot(self, name: str) -> Path:
        path = self.server.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path



@pytest.fixture
def browser(chromium: Any, live_server: LiveServer) -> Iterator[Browser]:
    # A tablet-sized landscape viewport: the size of the depot's screens. The pages' content security
    # policy forbids eval, which Playwright's polling predicates (wait_for_function) use: bypassed
    # here; tests/dashboard/test_basemap.py checks the policy in contexts that keep it.
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR",
                                   accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    session = Browser(page, live_server)
    page.on("console", lambda m: m.type == "error" and session.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: session.errors.append(f"page error: {e}"))
    yield session
    context.close()
    unexpected = session.unexpected_errors()
    assert unexpected == [], "JavaScript errors in the browser:\n" + "\n".join(unexpected)
