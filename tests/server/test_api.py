"""The HTTP API through the real app factory: roles, login, pagination, CSV, GeoJSON, metrics, audit."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from server.audit import AuditEntry
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.migrate import head_revision
from tests.conftest import BrokerAddress
from tests.server.conftest import PASSWORD, Server
from tests.server.events import lift_event
from tests.server.streets_db import postgres_database
from tests.server.streets_fixture import import_rennes, points_on_streets
from vision.schema import TruckConfig

# (method, path, least role); "{event}" is a stored lift.
ROUTES = [
    ("GET", "/api/streets", "viewer"),
    ("GET", "/api/streets?format=csv", "viewer"),
    ("GET", "/api/streets.geojson", "viewer"),
    ("GET", "/api/trucks", "viewer"),
    ("GET", "/metrics", "viewer"),
    ("GET", "/api/lifts", "manager"),
    ("GET", "/api/lifts/{event}", "manager"),
    ("GET", "/api/dead-letters", "manager"),
    ("GET", "/api/audit", "admin"),
]
ROLES = ("viewer", "manager", "admin")


def seed(server: Server, events: list[Any], locator: Any = None) -> None:
    """Store events through the ingest's write path (no broker needed for API tests)."""
    settings = server.settings
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: locator)
    now = datetime.now(UTC)
    messages = [MqttMessage(f"{settings.topic_prefix}/{e.truck_id}/lift", e.to_json().encode(), now) for e in events]
    with server.sessions() as session, session.begin():
        inbox.write(session, messages)


@pytest.fixture(scope="module")
def migrated_postgres(postgres_available: bool) -> Iterator[str | None]:
    """A PostgreSQL database migrated once for this file, which each test's database copies."""
    if not postgres_available:
        yield None
        return
    from server.db import make_engine
    from server.migrate import upgrade_database

    with postgres_database("trivue_api") as url:
        engine = make_engine(url)
        upgrade_database(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_postgres: str | None) -> Iterator[str]:
    """As the suite's, but PostgreSQL's is a copy of a migrated database (``CREATE DATABASE ... TEMPLATE``,
    a twentieth of a second) rather than an empty schema the app then migrates (a second per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trivue.db'}"
        return
    if migrated_postgres is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    import psycopg

    server, template = migrated_postgres.rsplit("/", 1)
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def test_health_is_open_and_everything_else_needs_login(api: Server) -> None:
    event = lift_event()
    seed(api, [event])
    health = api.client.get("/api/health")
    assert health.status_code == 200
    assert health.json() | {"version": None} == {"status": "ok", "database": "ok", "schema_revision": head_revision(),
                                                  "broker": "disabled", "version": None, "dev": False}
    for method, path, _ in ROUTES:
        response = api.client.request(method, path.format(event=event.event_id))
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    bogus = {"Authorization": "Bearer trv_not-a-token"}
    assert api.client.get("/api/streets", headers=bogus).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_roles(api: Server, role: str) -> None:
    event = lift_event()
    seed(api, [event])
    headers = api.token(role)
    for method, path, least in ROUTES:
        response = api.client.request(method, path.format(event=event.event_id), headers=headers)
        expected = 200 if ROLES.index(role) >= ROLES.index(least) else 403
        assert response.status_code == expected, f"{role} {path}: {response.text[:200]}"
    config = api.client.put("/api/trucks/benne-01/config", json={"stream": "glass"}, headers=headers)
    # Only an admin passes the role check; without a broker the publish is then refused as unavailable.
    assert config.status_code == (503 if role == "admin" else 403)


def test_revoked_token_is_refused(api: Server) -> None:
    from server.web.accounts import ApiToken
    from server.web.auth import revoke_token

    headers = api.token("viewer")
    assert api.client.get("/api/trucks", headers=headers).status_code == 200
    with api.sessions() as session:
        revoke_token(session, session.scalar(select(ApiToken.id)))
        session.commit()
    assert api.client.get("/api/trucks", headers=headers).status_code == 401


def test_login_cookie_session(api: Server) -> None:
    api.user("camille", "manager")
    assert api.client.post("/api/login", json={"name": "camille", "password": "wrong password"}).status_code == 401
    assert api.client.post("/api/login", json={"name": "nobody", "password": PASSWORD}).status_code == 401
    response = api.client.post("/api/login", json={"name": "camille", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["role"] == "manager"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "trivue_session=" in cookie
    assert api.client.get("/api/lifts").status_code == 200  # the cookie now authenticates
    assert api.client.post("/api/logout").status_code == 200
    api.client.cookies.clear()
    assert api.client.get("/api/lifts").status_code == 401
    with api.sessions() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("login.failed") == 2 and "login" in actions


def test_form_login_and_secure_cookie(make_settings: Any, run_server: Any) -> None:
    with run_server(make_settings(ingest_enabled=False, cookie_secure=True)) as server:
        server.user("dominique", "viewer")
        # A browser's form post from the https:// login page (a script on plain http gets no Secure
        # cookie: its jar would never send it back, tests/security/test_login_plain_http.py).
        response = server.client.post("/api/login", data={"name": "dominique", "password": PASSWORD},
                                       headers={"Origin": "https://testserver"})
        assert response.status_code == 200
        assert "secure" in response.headers["set-cookie"].lower()


def test_dev_mode_opens_everything(make_settings: Any, run_server: Any) -> None:
    with run_server(make_settings(ingest_enabled=False, dev=True)) as server:
        seed(server, [lift_event()])
        assert server.client.get("/api/lifts").status_code == 200
        assert server.client.get("/api/health").json()["dev"] is True


def test_lifts_pagination_and_filters(api: Server) -> None:
    start = datetime(2026, 11, 3, 6, tzinfo=UTC)
    events = [lift_event(f"benne-0{i % 3}", sequence=i, at=start + timedelta(minutes=i // 2),
                         counts={"bag": 1} if i % 4 == 0 else {"bottle": 1}) for i in range(25)]
    seed(api, events)
    headers = api.token("manager")
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        page = api.client.get("/api/lifts", params={"limit": 10, **({"cursor": cursor} if cursor else {})},
                              headers=headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(seen), len({s["event_id"] for s in seen})] == [25, 25]
    assert [s["started_at"] for s in seen] == sorted((s["started_at"] for s in seen), reverse=True)
    truck = api.client.get("/api/lifts", params={"truck_id": "benne-01", "contaminated": True},
                           headers=headers).json()["items"]
    want = {str(e.event_id) for e in events if e.truck_id == "benne-01" and e.contaminated}
    assert {s["event_id"] for s in truck} == want and want
    window = api.client.get("/api/lifts", params={"since": "2026-11-03T06:05:00Z", "until": "2026-11-03T06:07:00Z"},
                            headers=headers).json()["items"]
    assert len(window) == 4  # minutes 5 and 6, two lifts each
    assert api.client.get("/api/lifts", params={"cursor": "%%%"}, headers=headers).status_code == 422
    assert api.client.get(f"/api/lifts/{uuid.uuid4()}", headers=headers).status_code == 404


def test_lifts_by_local_collection_day_and_stream(api: Server) -> None:
    """The street page's photos follow its period (local days, both included, as /api/streets
    reads them) and its stream: 23:30 UTC on 3 November is the 4th in Orléans."""
    times = [datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 11, 3, 22, 30, tzinfo=UTC),
             datetime(2026, 11, 3, 23, 30, tzinfo=UTC), datetime(2026, 11, 5, 8, tzinfo=UTC)]
    events = [lift_event(stream=stream, at=at, sequence=i, counts={"bag": 1})
              for i, (at, stream) in enumerate((at, s) for at in times for s in ("recyclables", "glass"))]
    seed(api, events)
    headers = api.token("manager")

    def shown(**params: str) -> set[str]:
        answer = api.client.get("/api/lifts", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return {item["event_id"] for item in answer.json()["items"]}

    def want(first: str, last: str, stream: str | None = None) -> set[str]:
        return {str(e.event_id) for e in events if first <= lift_day(e.started_at) <= last
                and stream in (None, e.stream)}

    def lift_day(at: datetime) -> str:
        return at.astimezone(ZoneInfo("Europe/Paris")).date().isoformat()

    assert shown(day_since="2026-11-03", day_until="2026-11-03") == want("2026-11-03", "2026-11-03")
    assert len(want("2026-11-03", "2026-11-03")) == 2  # 22:30 UTC only: 23:30 UTC is the 4th
    assert shown(day_since="2026-11-04") == want("2026-11-04", "9999")
    assert shown(day_until="2026-11-04", stream="glass") == want("0000", "2026-11-04", "glass")
    assert len(shown(stream="recyclables")) == 4
    wrong = api.client.get("/api/lifts", params={"day_since": "2026-11-05", "day_until": "2026-11-04"},
                           headers=headers)
    assert wrong.status_code == 422 and "day_until" in wrong.text
    assert api.client.get("/api/lifts", params={"stream": "plutonium"}, headers=headers).status_code == 422


def test_street_exports_csv_and_geojson(api: Server) -> None:
    from server.streets.locator import Locator

    import_rennes(api.sessions)
    points = points_on_streets(api.sessions, 2)
    events = [lift_event(counts={"bag": 1} if i % 3 else {"bottle": 1}, gps=(p.lat, p.lon), heading=p.heading)
              for i, p in enumerate(points * 3)]
    with api.sessions() as session:
        seed(api, events, Locator.from_session(session))
    headers = api.token("viewer")
    rows = api.client.get("/api/streets", headers=headers).json()["streets"]
    by_accept = api.client.get("/api/streets", headers={**headers, "Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(by_accept.text)))
    assert [(int(r["street_id"]), r["name"], int(r["lifts"])) for r in table] == \
        [(r["street_id"], r["name"], r["lifts"]) for r in rows]
    assert by_accept.text == api.client.get("/api/streets?format=csv", headers=headers).text
    geo = api.client.get("/api/streets.geojson", headers=headers)
    assert geo.headers["content-type"] == "application/geo+json"
    features = geo.json()["features"]
    assert {f["id"] for f in features} == {p.street_id for p in points}
    assert all(f["geometry"]["type"] in ("LineString", "MultiLineString") for f in features)
    assert sum(f["properties"]["lifts"] for f in features) == len(events)


def test_household_reads_are_audited(api: Server) -> None:
    event = lift_event()
    seed(api, [event])
    api.client.get(f"/api/lifts/{event.event_id}", headers=api.token("manager"))
    with api.sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "lift.read"))
    assert entry is not None and entry.actor == "token:test-manager" and entry.target == str(event.event_id)


def test_metrics_exposition_format(api: Server) -> None:
    seed(api, [lift_event()])
    text = api.client.get("/metrics", headers=api.token("viewer")).text
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? -?[0-9.e+]+$')
    for line in text.strip().splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert "trivue_lifts 1" in text.splitlines()


def test_truck_config_is_published_retained(server: Server, mqtt_broker: BrokerAddress) -> None:
    topic = f"{server.settings.topic_prefix}/benne-05/config"
    admin = server.token("admin")
    assert server.client.put("/api/trucks/benne-05/config", json={"stream": "paper!"}, headers=admin).status_code == 422
    response = server.client.put("/api/trucks/benne-05/config", json={"stream": "glass"}, headers=admin)
    assert response.status_code == 200, response.text
    received: list[bytes] = []
    got = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cfg-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, m: (received.append(m.payload), got.set())
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        assert got.wait(10), "no retained config on the truck's topic"
        config = json.loads(received[0])
        assert config["stream"] == "glass" and config["config_version"]
        assert TruckConfig.model_validate(config).stream.value == "glass"
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # leave the broker clean
    finally:
        client.loop_stop()
        client.disconnect()
    trucks = server.client.get("/api/trucks", headers=admin).json()["trucks"]
    assert next(t for t in trucks if t["truck_id"] == "benne-05")["config"]["stream"] == "glass"


def test_viewers_do_not_see_streets_below_the_privacy_threshold(make_settings: Any, run_server: Any) -> None:
    from server.streets.locator import Locator

    with run_server(make_settings(ingest_enabled=False, viewer_min_lifts=3)) as server:
        import_rennes(server.sessions)
        busy, quiet = points_on_streets(server.sessions, 2)
        events = [lift_event(gps=(p.lat, p.lon), heading=p.heading) for p in (busy, busy, busy, quiet)]
        with server.sessions() as session:
            seed(server, events, Locator.from_session(session))
        viewer, manager = server.token("viewer"), server.token("manager")
        seen = {s["street_id"] for s in server.client.get("/api/streets", headers=viewer).json()["streets"]}
        assert seen == {busy.street_id}
        assert {f["id"] for f in server.client.get("/api/streets.geojson", headers=viewer).json()["features"]} == seen
        assert server.client.get(f"/api/streets/{quiet.street_id}", headers=viewer).status_code == 403
        everything = server.client.get("/api/streets", headers=manager).json()["streets"]
        assert {s["street_id"] for s in everything} == {busy.street_id, quiet.street_id}
        assert server.client.get(f"/api/streets/{quiet.street_id}", headers=manager).status_code == 200
        # A period without lifts on the street: zeros for everyone, not "managers only" (to managers too)
        empty = {"since": "2026-01-01", "until": "2026-01-31"}
        for who in (viewer, manager):
            answer = server.client.get(f"/api/streets/{quiet.street_id}", params=empty, headers=who)
            assert answer.status_code == 200 and answer.json()["lifts"] == 0, answer.text
        # The map's and the ranking's per-category rates: the same floor, whatever min_lifts asks.
        for params in ({"category": "verre"}, {"category": "verre", "min_lifts": 1}):
            rates = server.client.get("/api/error-rates", params=params, headers=viewer).json()["items"]
            assert {r["street_id"] for r in rates} == seen, params
        rates = server.client.get("/api/error-rates", params={"category": "verre"}, headers=manager).json()["items"]
        assert {r["street_id"] for r in rates} == {busy.street_id, quiet.street_id}


def test_login_locked_after_repeated_failures(api: Server) -> None:
    api.user("eve", "viewer")
    for _ in range(5):
        assert api.client.post("/api/login", json={"name": "eve", "password": "guess guess"}).status_code == 401
    locked = api.client.post("/api/login", json={"name": "eve", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    api.user("frank", "viewer")  # other accounts are unaffected
    assert api.client.post("/api/login", json={"name": "frank", "password": PASSWORD}).status_code == 200


def test_health_degraded_while_the_broker_is_unreachable(make_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from tests.conftest import free_port

    settings = make_settings(broker_url=f"mqtt://127.0.0.1:{free_port()}")  # nothing listens there
    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.json()["broker"] == "disconnected" and health.json()["database"] == "ok"
        assert client.get("/api/streets", headers=Server(settings, client, client.app.state.ctx.sessions,
                                                         None).token("viewer")).status_code == 200  # type: ignore[arg-type]


def test_trucks_count_the_lifts_of_the_last_7_days(make_settings: Any, run_server: Any) -> None:
    # Every 30 s on the fleet page: a count over all stored lifts would read years of them each time.
    with run_server(make_settings(ingest_enabled=False)) as server:
        settings = server.settings
        inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
        now = datetime.now(UTC)
        ages = {"benne-01": [timedelta(hours=1), timedelta(days=6, hours=23), timedelta(days=7, hours=1),
                             timedelta(days=400)],
                "benne-02": [timedelta(days=30)]}
        messages = [MqttMessage(f"{settings.topic_prefix}/{truck}/lift",
                                lift_event(truck, sequence=i, at=now - age, gps=None).to_json().encode(), now)
                    for truck, truck_ages in ages.items() for i, age in enumerate(truck_ages, 1)]
        with server.sessions() as session, session.begin():
            assert inbox.write(session, messages) == 0
        trucks = server.client.get("/api/trucks", headers=server.token("viewer")).json()["trucks"]
    assert {t["truck_id"]: t["lifts_7d"] for t in trucks} == {"benne-01": 2, "benne-02": 0}
