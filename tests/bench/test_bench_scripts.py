"""The benches are not run by the suite (minutes each): these check, in seconds, the parts that went
stale while the code moved on (what a bench seeds or resets, and its refusal of bad options)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text

from base.paths import REPO_ROOT
from server.app import create_app
from server.config import load_settings
from server.db import make_engine
from server.ingest.models import StreetDay
from server.streets.models import Street
from server.web.auth import add_user
from tests.conftest import port_open
from tests.server.streets_db import postgres_database
from tests.server.streets_fixture import import_rennes


def bench(script: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "bench" / script), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_dashboard_bench_seeds_what_the_map_reads(tmp_path: Path) -> None:
    # /api/streets sums the day/month/year roll-ups: seeding street days alone timed an empty map.
    from bench.dashboard import PASSWORD, seed_aggregates

    settings = load_settings(env={}, data_dir=tmp_path, ingest_enabled=False, cookie_secure=False)
    app = create_app(settings, start_ingest=False)
    sessions = app.state.ctx.sessions
    import_rennes(sessions)
    with sessions() as db:
        add_user(db, "bench", PASSWORD, "viewer")
        street_ids = list(db.scalars(select(Street.id).order_by(Street.id).limit(8)))
        seed_aggregates(db, street_ids, 20_000)
        since = date.today() - timedelta(days=89)
        seeded = db.scalar(select(func.sum(StreetDay.lifts)).where(StreetDay.day >= since))
    with TestClient(app) as client:
        client.post("/api/login", json={"name": "bench", "password": PASSWORD}).raise_for_status()
        streets = client.get("/api/streets", params={"since": since.isoformat()}).json()["streets"]
    assert {s["street_id"] for s in streets} == set(street_ids)
    assert sum(s["lifts"] for s in streets) == seeded > 0


@pytest.mark.skipif(not port_open("127.0.0.1", 5432), reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_ingest_bench_empties_postgresql_between_runs(tmp_path: Path) -> None:
    # Each run must start as empty as a SQLite run's new file: the roll-ups, match quality and
    # streets of an earlier round were left behind, and the next rounds upserted into them.
    from bench.ingest import _reset_database, capacity_run, scatter_messages

    with postgres_database("trivue_bench_reset") as url:
        settings = load_settings(env={}, data_dir=tmp_path, database_url=url, topic_prefix="bench-capacity/v1")
        assert capacity_run(settings, scatter_messages(40, gps=True), "path").events == 40
        _reset_database(url)
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                tables = [t for t in inspect(connection).get_table_names() if not t.startswith("alembic_version")]
                left = {t: n for t in tables if (n := connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar())}
                versions = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
        finally:
            engine.dispose()
    assert {"street_periods", "lifts", "streets"} <= set(tables)
    assert left == {}
    assert versions == 1  # still migrated: the next run does not start from an unversioned schema


@pytest.mark.parametrize(("args", "said"), [(("--trials", "1", "--bootstrap", "100"), "--bootstrap"),
                                           (("--trials", "0"), "--trials: at least 1")])
def test_reminders_validity_refuses_what_it_cannot_run(args: tuple[str, ...], said: str) -> None:
    # --bootstrap under the report's 200 draws failed with a pydantic traceback after a first
    # simulated campaign; --trials 0 with a division by zero at the table.
    done = bench("reminders_validity.py", *args)
    assert done.returncode == 2, done.stderr[-2000:]
    assert said in done.stderr and "Traceback" not in done.stderr


def test_chaos_refuses_an_unknown_scenario_before_running_the_others() -> None:
    done = bench("chaos.py", "--only", "edge-kill,ofline")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "unknown ofline" in done.stderr and "edge-kill" not in done.stdout


def test_train_step_names_the_missing_coco_init(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "data.yaml").write_text("names: [bag]\n")
    done = bench("train_step.py", str(run))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "yolov8n-coco.pt is missing" in done.stderr and "Traceback" not in done.stderr



def test_outbox_bench_runs_and_gives_space_back(tmp_path: Path) -> None:
    # A tiny run end to end: both outboxes measured side by side, the full one drained and reopened.
    run = bench("outbox.py", "--mb", "3", "--lifts", "3", "--passes", "1", "--dir", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "full/empty" in run.stdout and "lift + 100 KB photo" in run.stdout
    sizes = [float(line.rsplit("file ", 1)[1].split()[0]) for line in run.stdout.splitlines() if "file " in line]
    assert sizes[-1] < 3, run.stdout  # drained and restarted: not the 3 MiB it held
    assert bench("outbox.py", "--lifts", "0", "--dir", str(tmp_path)).returncode == 2


@pytest.mark.skipif(not port_open("127.0.0.1", 1883), reason="no MQTT broker at 127.0.0.1:1883")
def test_simulate_baseline_publishes_what_the_simulator_publishes() -> None:
    # The baseline sent 650-byte dummies, "a typical simulated LiftEvent", where the simulator's
    # lifts are ~540 bytes and come with heartbeats: the ratio compared different traffic.
    import paho.mqtt.client as mqtt

    received: list[tuple[str, int]] = []
    subscribed = threading.Event()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sizes-{uuid.uuid4().hex[:8]}")
    listener.on_message = lambda _c, _u, message: received.append((message.topic, len(message.payload)))
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.connect("127.0.0.1", 1883)
    listener.subscribe([("+/+/lift", 1), ("+/+/stats", 1)])
    listener.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK from the broker"
        run = bench("simulate.py", "--trucks", "2", "--repeat", "1", "--connections", "2")
        assert run.returncode == 0, run.stderr[-2000:]
        time.sleep(1.0)  # the last messages reach the listener
    finally:
        listener.loop_stop()
        listener.disconnect()

    def sizes(prefix: str, kind: str) -> list[int]:
        return sorted(n for topic, n in received if topic.startswith(prefix) and topic.endswith(f"/{kind}"))

    sim_lifts, bare_lifts = sizes("bench-sim-", "lift"), sizes("bench-bare-", "lift")
    planned = int(run.stdout.split(" trucks, ")[1].split()[0])
    assert len(sim_lifts) == len(bare_lifts) == planned > 0, run.stdout
    assert bare_lifts == sim_lifts  # the same events: only their random ids differ, same length
    assert len(sizes("bench-bare-", "stats")) == len(sizes("bench-sim-", "stats")) > 0
    said = f"{len(sim_lifts):,} lift messages, {sum(sim_lifts) / len(sim_lifts):,.0f} bytes on average"
    assert said in run.stdout, run.stdout


def test_audit_log_bench_times_each_filter_with_and_without_its_index(tmp_path: Path) -> None:
    run = bench("audit_log.py", "--entries", "20000", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.endswith("x")]
    assert len(rows) == 6 and "a truck's config history (rare)" in run.stdout, run.stdout
