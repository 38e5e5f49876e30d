"""Line-oriented serial devices (lift-arm signal, RFID reader, GPS, cab alert output) via pyserial.

``port`` is anything ``serial.serial_for_url`` opens: a device (``/dev/ttyUSB0``), a pty
(``/dev/pts/3``, how tests and simulators plug in), or a URL (``socket://host:port``, ``loop://``).
A device that disappears (USB unplugged, cable shaken loose, gpsd restarted) is reopened with
back-off; the reading thread never dies. Its owner hears of the loss (``on_lost``) at once: what the
device last said (the lift arm up, a position) is no longer known, where it stood until the device
spoke again (a lift left open through the unplug, then the first lift after it missed).

A line is what ends with CR or LF, nothing else: pyserial's ``readline`` also returns when its
timeout expires, and a sentence then arrived in two halves, each handled as a line (an RFID tag
cut in two gave the lift half a tag; an RMC cut after the course's first digit, a heading of 0).
A line with no end is held to ``MAX_LINE`` bytes, then dropped up to its end: a device babbling
without line ends no longer grows anything.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import serial

from edge.camera import Backoff

log = logging.getLogger(__name__)

MAX_LINE = 4096  # bytes; an NMEA sentence is at most 82, a tag or a lift-arm word less, gpsd's reports 1-2 k
LINE_END = re.compile(rb"[\r\n]")  # some readers end lines with CR alone
READ_CHUNK = 4096


class Throttled:
    """Warnings about bad device input, each kind at most once per ``every_s``: a device sending
    garbage ten times a second must say so in the log, not fill the disk with it."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}  # keys are the callers' few fixed kinds: bounded
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        with self._lock:
            now = self.clock()
            if now < self._next.get(kind, now):
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._next[kind] = now + self.every_s
        if held:
            message += f" ({held} more like it in the last {self.every_s:.0f} s)"
        self.logger.warning(message, *args)


def open_port(port: str, baud: int, timeout: float = 0.5) -> serial.SerialBase:
    return serial.serial_for_url(port, baudrate=baud, timeout=timeout)


class LineReader:
    """Calls ``on_line(text)`` for every line read from ``port`` in a background thread."""

    def __init__(
        self, port: str, baud: int, on_line: Callable[[str], None], name: str = "serial", greeting: bytes = b"",
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.port, self.baud, self.on_line, self.name, self.greeting = port, baud, on_line, name, greeting
        self.on_lost = on_lost  # called once each time an open device goes away
        self._stop = threading.Event()
        self.opened = threading.Event()  # set once the port is open (opening flushes pending input)
        self.warnings = Throttled(log)
        self._thread = threading.Thread(target=self._run, name=f"{name}-reader", daemon=True)

    def start(self) -> LineReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        backoff = Backoff(0.5, 10)
        again = ""
        while not self._stop.is_set():
            try:
                with open_port(self.port, self.baud) as device:
                    backoff.reset()
                    if self.greeting:  # e.g. gpsd's WATCH command, sent again after each reconnection
                        device.write(self.greeting)
                    self.opened.set()
                    # Said: the installer checking a truck's wiring sees each device come up, and its
                    # return after the warning of a loss; opening flushed whatever was sent before.
                    speed = "" if self.port.startswith("socket://") else f" at {self.baud} baud"
                    log.info("%s line %s open%s%s", self.name, self.port, again, speed)
                    again = " again"
                    self._read(device)
            except (serial.SerialException, OSError) as error:
                if self.opened.is_set():
                    self.opened.clear()
                    self._lost()
                delay = backoff.next()
                log.warning("%s line %s: %s; reopening in %.1f s", self.name, self.port, error, delay)
                self._stop.wait(delay)

    def _lost(self) -> None:
        if self.on_lost is not None:
            try:
                self.on_lost()
            except Exception:  # the owner's trouble must not stop the reader
                log.exception("%s line %s: cannot handle the loss of the device", self.name, self.port)

    def _read(self, device: serial.SerialBase) -> None:
        pending = bytearray()  # the line being received, never over MAX_LINE
        skipping = False  # in a line already over MAX_LINE: dropped up to its end
        while not self._stop.is_set():
            chunk = device.read(max(1, min(device.in_waiting, READ_CHUNK)))
            if not chunk:
                continue  # the read timed out: a half line stays pending, it is not a line
            pending += chunk
            *lines, rest = LINE_END.split(pending)
            pending = bytearray(rest)
            for raw in lines:
                if skipping:
                    skipping = False  # the end of the overlong line
                    continue
                self._line(raw)
            if len(pending) > MAX_LINE:
                self.warnings.warning("long", "%s line %s: over %d bytes without a line end; dropped",
                                      self.name, self.port, MAX_LINE)
                pending.clear()
                skipping = True

    def _line(self, raw: bytes) -> None:
        if len(raw) > MAX_LINE:
            self.warnings.warning("long", "%s line %s: a line of %d bytes (over %d); dropped",
                                  self.name, self.port, len(raw), MAX_LINE)
            return
        text = raw.decode("ascii", errors="replace").strip()
        if text:
            try:
                self.on_line(text)
            except Exception:  # a bad line must not stop the reader
                log.exception("%s line %s: cannot handle %r", self.name, self.port, text[:80])


class LineWriter:
    """Writes lines to ``port`` (cab buzzer, light); reopens on the next write after a failure.

    A failure is logged once per streak, and the first write that goes through again says so: the
    crew alert tries again at each detection, and logged each one while the line stayed away."""

    def __init__(self, port: str, baud: int) -> None:
        self.port, self.baud = port, baud
        self._device: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._failing = False

    def write(self, text: str) -> bool:
        with self._lock:
            try:
                if self._device is None:
                    self._device = open_port(self.port, self.baud)
                self._device.write(text.encode("ascii", errors="replace") + b"\r\n")
                self._device.flush()
            except (serial.SerialException, OSError) as error:
                if not self._failing:
                    log.error("alert line %s: %s; alerts are not sounded there until it writes again", self.port,
                              error)
                self._failing, self._device = True, None
                return False
            if self._failing:
                self._failing = False
                log.info("alert line %s: writing again", self.port)
            return True

    def close(self) -> None:
        with self._lock:
            if self._device is not None:
                self._device.close()
                self._device = None
