"""Line-oriented serial devices (lift-arm signal, RFID reader, GPS, cab alert output) via pyserial.

``port`` is anything ``serial.serial_for_url`` opens: a device (``/dev/ttyUSB0``), a pty
(``/dev/pts/3``, how tests and simulators plug in), or a URL (``socket://host:port``, ``loop://``).
A device that disappears (USB unplugged, cable shaken loose) is reopened with back-off; the
reading thread never dies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import serial

from edge.camera import Backoff

log = logging.getLogger(__name__)


def open_port(port: str, baud: int, timeout: float = 0.5) -> serial.SerialBase:
    return serial.serial_for_url(port, baudrate=baud, timeout=timeout)


class LineReader:
    """Calls ``on_line(text)`` for every line read from ``port`` in a background thread."""

    def __init__(
        self, port: str, baud: int, on_line: Callable[[str], None], name: str = "serial", greeting: bytes = b""
    ) -> None:
        self.port, self.baud, self.on_line, self.name, self.greeting = port, baud, on_line, name, greeting
        self._stop = threading.Event()
        self.opened = threading.Event()  # set once the port is open (opening flushes pending input)
        self._thread = threading.Thread(target=self._run, name=f"{name}-reader", daemon=True)

    def start(self) -> LineReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        backoff = Backoff(0.5, 10)
        while not self._stop.is_set():
            try:
                with open_port(self.port, self.baud) as device:
                    backoff.reset()
                    if self.greeting:  # e.g. gpsd's WATCH command, sent again after each reconnection
                        device.write(self.greeting)
                    self.opened.set()
                    self._read(device)
            except (serial.SerialException, OSError) as error:
                self.opened.clear()
                delay = backoff.next()
                log.warning("%s line %s: %s; reopening in %.1f s", self.name, self.port, error, delay)
                self._stop.wait(delay)

    def _read(self, device: serial.SerialBase) -> None:
        while not self._stop.is_set():
            raw = device.readline()
            if not raw:
                continue
            text = raw.decode("ascii", errors="replace").strip()
            if text:
                try:
                    self.on_line(text)
                except Exception:  # a bad line must not stop the reader
                    log.exception("%s line %s: cannot handle %r", self.name, self.port, text[:80])


class LineWriter:
    """Writes lines to ``port`` (cab buzzer, light); reopens on the next write after a failure."""

    def __init__(self, port: str, baud: int) -> None:
        self.port, self.baud = port, baud
        self._device: serial.SerialBase | None = None
        self._lock = threading.Lock()

    def write(self, text: str) -> bool:
        with self._lock:
            try:
                if self._device is None:
                    self._device = open_port(self.port, self.baud)
                self._device.write(text.encode("ascii", errors="replace") + b"\r\n")
                self._device.flush()
                return True
            except (serial.SerialException, OSError) as error:
                log.error("alert line %s: %s", self.port, error)
                self._device = None
                return False

    def close(self) -> None:
        with self._lock:
            if self._device is not None:
                self._device.close()
                self._device = None
