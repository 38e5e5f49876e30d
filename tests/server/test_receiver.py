"""The receiving process of ingest (``server.ingest.receiver``), on the real broker.

The broker connection lives in a child process; the server stores and tells it what to
acknowledge. Killing that child must lose nothing and count nothing twice, the child must not
outlive its server, and what it logs must reach the server's log.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from server.ingest.models import DeadLetter, Lift
from server.ingest.receiver import BrokerLink
from tests.server.conftest import Server, publish, wait_for
from tests.server.events import lift_event


def _count(server: Server, table: Any) -> int:
    with server.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _lifts(server: Server, truck: str, sequences: range) -> list[tuple[str, bytes | str]]:
    prefix = server.settings.topic_prefix
    return [(f"{prefix}/{truck}/lift", lift_event(truck, sequence=s).to_json()) for s in sequences]


def test_the_broker_connection_is_a_child_process(server: Server) -> None:
    pid = server.ingest.link.child_pid
    assert pid is not None and pid != os.getpid()
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert b"server.ingest.receiver" in cmdline.read()


def test_a_killed_receiver_is_replaced_and_nothing_is_lost_or_counted_twice(server: Server) -> None:
    link = server.ingest.link
    lifts = _lifts(server, "truck-k", range(90))
    publish(server.broker, lifts[:40])
    wait_for(lambda: _count(server, Lift) == 40, "the first 40 lifts")
    first = link.child_pid
    os.kill(first, signal.SIGKILL)  # as the kernel's OOM killer would
    # Published while no receiver runs: the broker keeps them for the persistent session.
    publish(server.broker, lifts[40:80])
    wait_for(lambda: link.restarts >= 1 and link.child_pid != first, "a new receiver")
    assert server.ingest.wait_connected(15)
    # Sent again by a truck that never saw its receipts (the same events), and the last ten.
    publish(server.broker, lifts[30:])
    wait_for(lambda: _count(server, Lift) == 90, "all 90 distinct lifts", 30)
    wait_for(lambda: server.ingest.metrics.value("trivue_ingest_lifts_duplicate_total") >= 50, "the duplicates")
    with server.sessions() as session:
        sequences = sorted(session.scalars(select(Lift.sequence).where(Lift.truck_id == "truck-k")))
    assert sequences == list(range(90))
    assert _count(server, DeadLetter) == 0


SERVER_SCRIPT = """
import sys, time
from server.ingest.receiver import BrokerLink
from server.config import ServerSettings
link = BrokerLink(ServerSettings.model_validate_json(sys.stdin.read()), lambda _m: None)
link.start()
assert link.connected.wait(15)
print(link.child_pid, flush=True)
time.sleep(600)
"""


def test_the_receiver_ends_when_its_server_is_killed(make_settings: Any) -> None:
    settings = make_settings()
    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(settings.model_dump_json())
        server.stdin.close()
        child = int(server.stdout.readline())
        assert _alive(child)
        server.kill()  # SIGKILL: the server cannot tell its receiver anything
        server.wait(10)
        wait_for(lambda: not _alive(child), "the orphaned receiver to end (its pipe closed)")
    finally:
        server.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_what_the_receiver_logs_reaches_the_server_log(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="server.ingest.receiver")
    settings = make_settings()
    link = BrokerLink(settings, lambda _messages: None)
    link.start()
    try:
        assert link.connected.wait(15)
        wait_for(lambda: any("connected to the broker" in r.getMessage() for r in caplog.records),
                 "the child's log line in this process")
    finally:
        link.stop()
    assert any(f"ingest subscribing to {settings.broker_url}" in r.getMessage() for r in caplog.records)


def test_a_link_without_a_receiver_refuses_publications_at_once(make_settings: Any) -> None:
    link = BrokerLink(make_settings(), lambda _messages: None)
    assert link.publish_and_wait("trivue/v1/truck-a/config", b"{}") == mqtt.MQTT_ERR_NO_CONN  # never started
    link.start()
    assert link.connected.wait(15)
    assert link.publish_and_wait("trivue/v1/truck-a/config", b"{}") == mqtt.MQTT_ERR_SUCCESS
    link.stop()
    assert link._process is not None and link._process.poll() == 0  # it ended by itself, not killed
    assert link.publish_and_wait("trivue/v1/truck-a/config", b"{}") == mqtt.MQTT_ERR_NO_CONN
