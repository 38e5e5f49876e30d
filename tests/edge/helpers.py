"""Builders shared by the edge tests: burst folders of real photos, a scripted detector, a subscriber."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

import edge.gps
import edge.trigger
from edge.camera import Frame
from edge.gps import Gps, open_gps
from edge.lines import LineReader
from vision.detection import Detections

NAMES = ("bottle", "glass", "battery", "bag")


def make_bursts(root: Path, photos: list[Path], lifts: int, frames: int) -> list[Path]:
    """``lifts`` burst folders of ``frames`` real photos each (copies: the shared folder is read-only)."""
    folders = []
    for lift in range(lifts):
        folder = root / f"burst-{lift:03d}"
        folder.mkdir(parents=True)
        for frame in range(frames):
            shutil.copy(photos[(lift * frames + frame) % len(photos)], folder / f"{frame:02d}.jpg")
        folders.append(folder)
    return folders


@dataclass(frozen=True)
class Meta:
    name: str = "scripted"
    version: str = "test-1"


@dataclass
class ScriptedDetector:
    """Returns the scripted detections of each analysed frame in turn (boxes in pixels)."""

    script: list[list[tuple[float, float, float, float, float, int]]]
    names: tuple[str, ...] = NAMES
    meta: Meta = field(default_factory=Meta)
    conf: float = 0.25
    path: Path = Path("scripted.onnx")
    calls: int = 0

    def detect(self, image: np.ndarray) -> Detections:
        rows = self.script[self.calls] if self.calls < len(self.script) else []
        self.calls += 1
        return Detections.from_rows(rows)


def unique_truck() -> str:
    # Mosquitto is shared between tests and sessions: every test gets its own topics.
    return f"test-{uuid.uuid4().hex[:10]}"


class Subscriber:
    """A paho client collecting (topic, payload, retain) for ``topic_filter``."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _r in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def suback_seen(client: mqtt.Client) -> threading.Event:
    """Set at ``client``'s first SUBACK (install it before the client subscribes). A client that
    subscribes in ``on_connect`` is subscribed only then: a message published before it is lost
    when not retained. A fixed sleep after CONNACK was sometimes too short on a loaded CI machine."""
    seen = threading.Event()
    client.on_subscribe = lambda *_a: seen.set()
    return seen


class GatedPort:
    """A TCP port that refuses connections until ``open()``, then forwards them to a real broker.

    Lets a test start the agent while "the broker is down" and bring it up later, while the test's
    own subscriber already listens on the real broker (no race with the agent's reconnection).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


# Real receiver sentences (the NMEA 0183 examples), played to the agent over ptys and parsed alone.
GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"


def open_gps_line(source: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Gps:
    """``open_gps`` on a device line, returned once its line is open: opening a serial port flushes
    pending input, so a sentence written before is lost (a fixed sleep was sometimes short under load)."""
    readers: list[LineReader] = []

    class Seen(LineReader):
        def start(self) -> LineReader:
            readers.append(self)
            return super().start()

    monkeypatch.setattr(edge.gps, "LineReader", Seen)
    gps = open_gps(source, **kwargs)
    assert readers and readers[0].opened.wait(10), f"the GPS line {source} never opened"
    return gps


class TriggerClock:
    """The lift signal's monotonic clock (``edge.trigger``), moved by the test alone. Its limits
    (a 50 ms stuck signal, a 200 ms bounce) judged on the real clock failed when a loaded machine
    paused the test between two calls for longer than that."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(edge.trigger, "time", SimpleNamespace(monotonic=lambda: self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds


def eventually(check: Callable[[], bool], timeout: float = 5) -> bool:
    """Whether ``check`` holds within ``timeout`` seconds (a device thread's reading lands)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.02)
    return check()


def frame() -> Frame:
    """A blank frame of now, for the triggers, which look at its time only."""
    return Frame(np.zeros((4, 4, 3), np.uint8), datetime.now(UTC), 0)
