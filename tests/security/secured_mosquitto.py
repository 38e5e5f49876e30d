"""A private Mosquitto started on the shipped production config (deploy/mosquitto), for tests.

The config file, the ACL and the scripts are the ones in ``deploy/``: only paths and ports are
rewritten, and every rewrite must hit exactly one line, so a drift of the shipped file breaks the
tests instead of silently testing something else. Reliability tests reuse it because the shared
development broker keeps Mosquitto's defaults (1000 queued messages per offline client).
"""

from __future__ import annotations

import getpass
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SERVER_USER = "trivue-server"
START_TIMEOUT_S = 10.0


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def tools_missing() -> str | None:
    """Why these tests cannot run here, or None."""
    for tool in (MOSQUITTO, "mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _rewrite(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"deploy/mosquitto/mosquitto.conf: expected one line matching {pattern!r}, got {count}")
    return new


def render_config(workdir: Path, port: int, tls_port: int) -> Path:
    """The shipped mosquitto.conf with its paths under ``workdir`` and the given ports."""
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    tls = workdir / "tls"
    for pattern, value in [
        (r"^password_file .*$", f"password_file {workdir / 'passwd'}"),
        (r"^acl_file .*$", f"acl_file {DEPLOY / 'mosquitto' / 'acl'}"),
        (r"^persistence_location .*$", f"persistence_location {workdir / 'data'}/"),
        (r"^listener 8883$", f"listener {tls_port} 127.0.0.1"),
        (r"^cafile .*$", f"cafile {tls / 'ca.crt'}"),
        (r"^certfile .*$", f"certfile {tls / 'server.crt'}"),
        (r"^keyfile .*$", f"keyfile {tls / 'server.key'}"),
        (r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1"),
    ]:
        text = _rewrite(text, pattern, value)
    # Run as the test user: root would otherwise drop to `mosquitto`, who cannot read tmp_path.
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\n" + text)
    (workdir / "data").mkdir(exist_ok=True)
    return conf


def add_truck(workdir: Path, truck_id: str) -> subprocess.CompletedProcess[str]:
    """Run the shipped add-truck.sh on the test password file."""
    return subprocess.run([str(DEPLOY / "mosquitto" / "add-truck.sh"), "-f", str(workdir / "passwd"),
                           "-H", "127.0.0.1", truck_id], capture_output=True, text=True, timeout=30)


def password_from_url(url: str) -> str:
    """The password in ``mqtts://truck:password@host:8883`` as printed by add-truck.sh."""
    match = re.fullmatch(r"mqtts://([^:]+):([^@]+)@[^:]+:8883", url.strip())
    if match is None:
        raise AssertionError(f"add-truck.sh printed {url!r}, not an mqtts:// URL")
    return match.group(2)


@dataclass
class SecuredMosquitto:
    """Mosquitto on the production config, with trucks and a server account; ``start()``/``stop()``."""

    workdir: Path
    trucks: tuple[str, ...] = ("truck-a", "truck-b")
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        subprocess.run([str(DEPLOY / "tls" / "make-certs.sh"), str(self.workdir / "tls"), "localhost",
                        "IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
        for truck in self.trucks:
            done = add_truck(self.workdir, truck)
            assert done.returncode == 0, done.stderr
            self.passwords[truck] = password_from_url(done.stdout)
        self.passwords[SERVER_USER] = secrets.token_urlsafe(24)
        subprocess.run(["mosquitto_passwd", "-b", str(self.workdir / "passwd"), SERVER_USER,
                        self.passwords[SERVER_USER]], check=True, capture_output=True, timeout=30)
        render_config(self.workdir, self.port, self.tls_port)

    @property
    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        if not (self.workdir / "mosquitto.conf").exists():
            self.prepare()
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.workdir / "mosquitto.conf")],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_open(self.port) and port_open(self.tls_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start:\n{self.log[-3000:]}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM saves the persistence file (queued messages of offline sessions); SIGKILL does not."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def url(self, user: str, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{user}:{self.passwords[user]}@127.0.0.1:{port}"


class Probe:
    """A paho client that records what it receives, for assertions."""

    def __init__(self, client_id: str = "", protocol: int = mqtt.MQTTv311) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason)
        self.client.on_message = lambda _c, _u, message: self.received.put(message)
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(list(codes))
        self.client.on_disconnect = lambda _c, _u, _f, reason, _p: self.disconnects.put(reason)
        self.acks: dict[int, int] = {}  # mid -> PUBACK reason code (MQTT 5; 0 under 3.1.1)
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.acks.__setitem__(mid, reason.value)
        # Mosquitto closes the connection after a denied publish: come back quickly.
        self.client.reconnect_delay_set(0.05, 0.5)

    def connect(self, port: int, user: str | None = None, password: str | None = None,
                ca: Path | None = None, **tls: Any) -> ReasonCode:
        """Connect and return the CONNACK reason code (raises what paho raises, e.g. on TLS)."""
        if user is not None:
            self.client.username_pw_set(user, password)
        if ca is not None or tls:
            self.client.tls_set(ca_certs=str(ca) if ca else None, **tls)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        try:
            return self.connack.get(timeout=5)
        except queue.Empty:
            raise AssertionError("no CONNACK within 5 s") from None

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> int:
        """Publish at QoS 1 and wait for the PUBACK (across a reconnect); returns the mid."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        # NO_CONN: paho queues the message and sends it after the reconnect.
        assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), mqtt.error_string(info.rc)
        deadline = time.monotonic() + 5
        while info.mid not in self.acks:
            if time.monotonic() > deadline:
                raise AssertionError(f"no PUBACK for {topic} within 5 s")
            time.sleep(0.01)
        return info.mid

    def messages(self, wait_s: float = 1.0) -> list[tuple[str, bytes]]:
        """Everything received within ``wait_s`` from now (topic, payload)."""
        got, deadline = [], time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.received.get(timeout=left)
            except queue.Empty:
                break
            got.append((message.topic, bytes(message.payload)))
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
