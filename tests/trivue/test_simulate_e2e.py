"""Simulated rounds through a real broker into a real server (SQLite), checked against the ground truth.

Streets are the committed Rennes extract (so these tests run without ../shared too); the server is
``create_app`` behind a TestClient with its MQTT ingest running; the simulator is the real
``trivue simulate`` command in a subprocess (events mode) or in-process (broker restarts, full mode).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from base.paths import REPO_ROOT
from server.app import create_app
from server.config import ServerSettings, load_settings
from server.db import make_engine
from server.migrate import upgrade_database
from server.streets.importer import import_street_file
from tests.conftest import BrokerAddress, free_port
from tests.server.streets_db import postgres_database
from trivue.demo.place import SAMPLE_STREETS
from trivue.sim.options import SimulateOptions

AREA = "48.1113,-1.6800,500"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def server_settings(tmp_path: Path, broker_url: str, prefix: str, db_url: str | None = None) -> ServerSettings:
    db_url = db_url or f"sqlite:///{tmp_path / 'trivue.db'}"
    engine = make_engine(db_url)
    upgrade_database(engine)
    with Session(engine) as session:
        import_street_file(session, SAMPLE_STREETS)
        session.commit()
    return load_settings(env={}, data_dir=tmp_path, database_url=db_url, broker_url=broker_url, topic_prefix=prefix,
                         mqtt_protocol="3.1.1", mqtt_client_id=f"sim-test-{uuid.uuid4().hex[:8]}", dev=True,
                         ingest_batch_wait_ms=10)


@pytest.fixture
def prefix() -> str:  # the broker may be shared with other test runs: a topic tree of our own
    return f"simtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[str]:
    """SQLite in tmp_path, or a fresh PostgreSQL database when 127.0.0.1:5432 answers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trivue.db'}"
        return
    if not postgres_available:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with postgres_database("trivue_sim") as url:
        yield url


@pytest.fixture
def api(tmp_path: Path, mqtt_broker: BrokerAddress, prefix: str, database_url: str) -> Iterator[TestClient]:
    settings = server_settings(tmp_path, mqtt_broker.url, prefix, database_url)
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/api/health").json()["broker"] == "connected", "ingest connected")
        yield client


def api_totals(client: TestClient) -> tuple[dict[int, dict[str, Any]], int]:
    body = client.get("/api/streets", params={"min_lifts": 1}).json()
    unmatched = body["unmatched"]
    unmatched = unmatched["lifts"] if isinstance(unmatched, dict) else int(unmatched)
    return {row["street_id"]: row for row in body["streets"]}, unmatched


def wait_stored(client: TestClient, expected: int) -> dict[int, dict[str, Any]]:
    def stored() -> dict[int, dict[str, Any]] | None:
        streets, unmatched = api_totals(client)
        return streets if sum(s["lifts"] for s in streets.values()) + unmatched >= expected else None
    return wait_for(stored, f"{expected} lifts stored", timeout=60)


def test_events_round_matches_ground_truth(api: TestClient, tmp_path: Path, mqtt_broker: BrokerAddress,
                                           prefix: str, database_url: str) -> None:
    env_db = database_url
    out = subprocess.run(
        [sys.executable, "-m", "trivue", "simulate", "--trucks", "3", "--round-km", "2", "--area", AREA,
         "--seed", "7", "--database-url", env_db, "--broker", mqtt_broker.url, "--truth", str(tmp_path / "truth"),
         "--store-households", "--duplicates", "0.1", "--malformed", "0.03", "--clock-skew", "90",
         "--outage", "600+900", "--bad-share", "0.2", "--bad-rate", "0.7", "--base-rate", "0.05"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
        env={"PATH": "/usr/bin:/bin", "TRIVUE_TOPIC_PREFIX": prefix, "TRIVUE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert truth["faults"]["duplicates_sent"] > 0 and truth["faults"]["malformed_sent"] > 0
    assert truth["faults"]["outage_deliveries"] > 0
    streets = wait_stored(api, truth["lifts"])
    time.sleep(1.0)  # duplicates and late messages would show up now
    streets, unmatched = api_totals(api)
    assert sum(s["lifts"] for s in streets.values()) + unmatched == truth["lifts"]  # each lift once, none lost
    # Events mode sends the truth's verdicts: every contaminated lift is counted, on a street or unmatched.
    unmatched_bad = api.get("/api/streets", params={"min_lifts": 1}).json()["unmatched"]["contaminated"]
    assert sum(s["contaminated"] for s in streets.values()) + unmatched_bad == truth["contaminated"]
    # Lifts without a GPS fix are the only ones that may stay unmatched.
    assert unmatched <= truth["lifts"] - truth["with_gps"] + 2
    # Per street, the server's counts follow the truth (a few lifts near junctions may go next door).
    true_by_id = {s["street_id"]: s for s in truth["streets"]}
    off = sum(abs(streets.get(sid, {"lifts": 0})["lifts"] - s["lifts"]) for sid, s in true_by_id.items())
    assert off <= 0.1 * truth["lifts"], off
    # The worst streets of the API are the simulated bad ones.
    bad = {s["street_id"] for s in truth["streets"] if s["planned_rate"] == 0.7}
    ranked = sorted((s for s in streets.values() if s["lifts"] >= 8), key=lambda s: -s["rate"])
    top = [s["street_id"] for s in ranked[: max(3, len(bad) // 2)]]
    assert top and all(sid in bad for sid in top), (top, bad)
    dead = api.get("/api/dead-letters").json()
    assert sum(dead["counts"].values()) == truth["faults"]["malformed_sent"]
    # A skewed truck's lifts carry its wrong clock, exactly.
    with (tmp_path / "truth" / "lifts.csv").open(encoding="utf-8") as rows:
        skewed = [r for r in csv.DictReader(rows) if float(r["clock_skew_s"])][:3]
    assert skewed
    for row in skewed:
        lift = api.get(f"/api/lifts/{row['event_id']}").json()
        shift = datetime.fromisoformat(lift["started_at"]) - datetime.fromisoformat(row["started_at"])
        assert abs(shift.total_seconds() - float(row["clock_skew_s"])) < 0.01


def test_broker_restart_and_outage_lose_nothing(tmp_path: Path, prefix: str) -> None:
    from trivue.broker import BrokerHandle
    from trivue.sim.run import SimulationRun

    broker = BrokerHandle("127.0.0.1", free_port()).start()
    try:
        url = f"mqtt://127.0.0.1:{broker.port}"
        settings = server_settings(tmp_path, url, prefix)
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: client.get("/api/health").json()["broker"] == "connected", "ingest connected")
            args = simulate_args(tmp_path, url, trucks=2, broker_restart=[900.0], outage=["300+600"])
            run = SimulationRun(args, settings.db_url, url, prefix, tmp_path / "truth")
            truth = run.play(*run.prepare(), broker)
            summary = truth.summary()
            assert summary["faults"]["broker_restarts"] == 1
            wait_stored(client, summary["lifts"])
            time.sleep(1.0)
            streets, unmatched = api_totals(client)
            assert sum(s["lifts"] for s in streets.values()) + unmatched == summary["lifts"]
    finally:
        broker.stop()


def test_full_mode_runs_the_edge_agent_through_skew_a_broker_restart_and_a_dark_camera(tmp_path: Path,
                                                                                       prefix: str) -> None:
    from trivue.broker import BrokerHandle
    from trivue.sim.run import SimulationRun
    from vision.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("no detection model (neither models/ nor ../shared)")
    broker = BrokerHandle("127.0.0.1", free_port()).start()
    try:
        url = f"mqtt://127.0.0.1:{broker.port}"
        settings = server_settings(tmp_path, url, prefix)
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: client.get("/api/health").json()["broker"] == "connected", "ingest connected")
            args = simulate_args(tmp_path, url, trucks=2, mode="full", round_km=0.12, broker_restart=[60.0],
                                 clock_skew=["--clock-skew", "3600", "--skew-share", "0.5"],
                                 camera_dark="sim-02:1+2")
            run = SimulationRun(args, settings.db_url, url, prefix, tmp_path / "truth")
            truth = run.play(*run.prepare(), broker)
            rows = truth.rows
            assert truth.faults["broker_restarts"] == 1
            assert 4 <= len(rows) <= 40 and all(r["event_id"] for r in rows)
            wait_stored(client, len(rows) - 2)  # the dark camera's 2 lifts count on no street, judged or not
            skewed = {r["truck_id"] for r in rows if r["clock_skew_s"]}
            assert len(skewed) == 1
            for row in rows:
                lift = client.get(f"/api/lifts/{row['event_id']}").json()
                assert lift["frames"] == 3 and lift["model"]["name"] != "trivue-simulator", lift
                assert lift["truck_id"] == row["truck_id"]
                shift = (datetime.fromisoformat(lift["started_at"]) - datetime.fromisoformat(row["started_at"]))
                assert abs(shift.total_seconds() - row["clock_skew_s"]) < 5, (shift, row["clock_skew_s"])
                # the agent itself found the dark frames unusable: those lifts and only those
                assert lift["view_unusable"] == (row["view_unusable"] or None), (lift, row)
            dark = [(r["truck_id"], r["sequence"]) for r in rows if r["view_unusable"]]
            assert dark == [("sim-02", 1), ("sim-02", 2)]
            assert client.get("/api/data-quality").json()["view_unusable"] == 2
    finally:
        broker.stop()


def simulate_args(tmp_path: Path, broker_url: str, trucks: int, mode: str = "events", round_km: float = 1.0,
                  **faults: Any) -> SimulateOptions:
    from trivue.cli import build_parser

    argv = ["simulate", "--mode", mode, "--trucks", str(trucks), "--round-km", str(round_km), "--area", AREA,
            "--seed", "3", "--broker", broker_url, "--store-households"]
    for when in faults.get("broker_restart", []):
        argv += ["--broker-restart", str(when)]
    for window in faults.get("outage", []):
        argv += ["--outage", window]
    argv += faults.get("clock_skew", [])
    if "camera_dark" in faults:
        argv += ["--camera-dark", faults["camera_dark"]]
    args = build_parser().parse_args(argv)
    args.database_url = f"sqlite:///{tmp_path / 'trivue.db'}"
    return SimulateOptions.from_args(args)

