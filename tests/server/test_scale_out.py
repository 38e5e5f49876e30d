"""Scale-out: two ``trivue server`` processes share one MQTT 5 shared subscription on the real
Mosquitto and one database. Each gets a share of the lifts; together they store every lift once.

The in-process variant (``test_ingest.py::test_shared_subscription_splits_the_load``) runs two
apps in the pytest process; this one runs the real command, as systemd would start two workers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from base.paths import REPO_ROOT
from server.config import ServerSettings
from server.db import make_engine
from server.ingest.models import Lift, StreetDay
from server.migrate import upgrade_database
from tests.conftest import BrokerAddress, free_port
from tests.server.conftest import publish, wait_for
from tests.server.events import lift_event

LIFTS = 300


@contextmanager
def worker(settings: ServerSettings, name: str, folder: Path) -> Iterator[str]:
    """``trivue server`` (dev mode: /metrics without a token) as a child process; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVUE_")}
    values = {"data_dir": folder / name, "database_url": settings.db_url, "broker_url": settings.broker_url,
              "topic_prefix": settings.topic_prefix, "mqtt_shared_group": settings.mqtt_shared_group,
              "mqtt_client_id": f"{settings.mqtt_client_id}-{name}",  # one session per worker
              "port": port, "ingest_batch_wait_ms": 20, "dev": "true", "cookie_secure": "false"}
    env.update({f"TRIVUE_{k.upper()}": str(v) for k, v in values.items()})
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "trivue", "server"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        def connected() -> bool:
            assert process.poll() is None, f"worker {name} exited: {(folder / f'{name}.log').read_text()[-2000:]}"
            try:
                return httpx.get(f"{base}/api/health", timeout=2).json().get("broker") == "connected"
            except httpx.HTTPError:
                return False

        wait_for(connected, f"worker {name} connected to the broker", timeout=60)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def counter(base: str, name: str, **labels: str) -> float:
    """A counter from the worker's Prometheus text (0 when it has no sample yet)."""
    body = httpx.get(f"{base}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = r"^" + re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_two_server_processes_split_a_shared_subscription(make_settings: Any, mqtt_broker: BrokerAddress,
                                                          tmp_path: Path) -> None:
    if mqtt_broker.kind != "mosquitto":
        pytest.skip("the embedded amqtt broker has no shared subscriptions")
    settings: ServerSettings = make_settings(mqtt_shared_group="ingest")
    engine = make_engine(settings.db_url)
    upgrade_database(engine)  # before the workers: two first starts would race to create the tables
    try:
        with ExitStack() as stack:
            bases = [stack.enter_context(worker(settings, name, tmp_path)) for name in ("a", "b")]
            events = [lift_event(f"benne-{i % 3}", sequence=i, gps=None) for i in range(LIFTS)]
            publish(mqtt_broker, [(f"{settings.topic_prefix}/{e.truck_id}/lift", e.to_json()) for e in events])

            def stored() -> int:
                with Session(engine) as session:
                    return int(session.scalar(select(func.count()).select_from(Lift)) or 0)

            wait_for(lambda: stored() == LIFTS, f"{LIFTS} lifts stored", timeout=60)
            wait_for(lambda: sum(counter(b, "trivue_ingest_lifts_stored_total") for b in bases) == LIFTS,
                     "both workers' counters")
            received = [counter(b, "trivue_ingest_messages_total", kind="lift") for b in bases]
            shares = [counter(b, "trivue_ingest_lifts_stored_total") for b in bases]
            duplicates = [counter(b, "trivue_ingest_lifts_duplicate_total") for b in bases]
        # Workers stopped: nothing can arrive late and be counted twice after this point.
        assert min(shares) > 0, f"each worker took a share: {shares}"
        assert sum(received) == LIFTS, f"each message went to exactly one worker: {received}"
        assert duplicates == [0, 0]
        with Session(engine) as session:
            ids = set(session.scalars(select(Lift.event_id)))
            assert ids == {str(e.event_id) for e in events}, "no lift lost"
            assert session.scalar(select(func.sum(StreetDay.lifts))) == LIFTS, "aggregates count each lift once"
    finally:
        engine.dispose()
