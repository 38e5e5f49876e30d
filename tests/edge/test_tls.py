"""TLS and username/password to a real Mosquitto started for the test (skipped where absent)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import free_port, port_open
from tests.edge.helpers import ScriptedDetector, eventually, make_bursts, suback_seen, unique_truck
from tests.edge.test_agent import BOTTLE, GLASS, run_agent, settings_for
from vision.schema import parse_lift_event

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("mosquitto", "mosquitto_passwd", "openssl")),
    reason="needs mosquitto, mosquitto_passwd and openssl",
)


def make_certificates(folder: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Trivue test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    folder = tmp_path_factory.mktemp("tls-broker")
    make_certificates(folder)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(folder / "passwd"), "truck", "s3cret"], check=True)
    port = free_port()
    (folder / "mosquitto.conf").write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {folder / 'passwd'}\n"
        f"cafile {folder / 'ca.crt'}\ncertfile {folder / 'server.crt'}\nkeyfile {folder / 'server.key'}\n"
        "persistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port, folder / "ca.crt"
    broker.terminate()
    broker.wait(5)


def tls_subscriber(port: int, ca: Path, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    received: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set("truck", "s3cret")
    client.tls_set(ca_certs=str(ca))
    client.on_message = lambda _c, _u, m: received.append(m.payload)
    subscribed = suback_seen(client)
    client.connect("localhost", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"  # a lift published before it is lost (not retained)
    return client, received


@pytest.mark.parametrize(("password", "delivered"), [("s3cret", True), ("wrong", False)])
def test_mqtts_with_credentials(tmp_path, tls_broker, litter_val_images, password, delivered) -> None:
    port, ca = tls_broker
    truck = unique_truck()
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    settings = settings_for(tmp_path, tmp_path / "bursts", f"mqtts://truck:{password}@localhost:{port}", truck,
                            uplink={"ca_file": str(ca), "flush_timeout_s": 5 if delivered else 2},
                            alert={"broker": None})
    client, received = tls_subscriber(port, ca, f"trivue/v1/{truck}/lift")
    try:
        assert run_agent(settings, ScriptedDetector([[BOTTLE, GLASS]] * 2)) == (0 if delivered else 1)
        if delivered:  # acknowledged by the broker, maybe not handed to this subscriber yet
            eventually(lambda: bool(received), timeout=10)
        else:
            time.sleep(0.3)  # a lift that got through would land now
    finally:
        client.disconnect()
        client.loop_stop()
    assert [parse_lift_event(p).counts for p in received] == ([{"bottle": 1, "glass": 1}] if delivered else [])
