"""Lift boundaries: which frames belong to a bin lift (only those are run through the detector).

A trigger answers ``lift_of(frame)``: the key of the lift the frame belongs to, or None between
lifts. The pipeline opens a lift when the key appears and closes it when the key changes.

- ``BurstTrigger``: a burst folder is a lift.
- ``SignalTrigger``: a level from the lift arm (up = lifting), fed by ``SerialTrigger`` (a serial
  line or pty carrying ``1``/``0``, ``UP``/``DOWN`` or ``START``/``END`` lines; GPIO boxes and
  CAN gateways commonly expose such a line) or ``MqttTrigger`` (a bridge topic, same payloads).
- ``MotionTrigger``: motion inside the hopper polygon, for trucks with no signal wired.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from typing import Protocol

import cv2
import numpy as np

from edge.camera import Frame
from edge.lines import LineReader, Throttled
from vision.region import Region

log = logging.getLogger(__name__)

UP_WORDS = {"1", "up", "start", "lift", "on", "true"}
DOWN_WORDS = {"0", "down", "end", "stop", "off", "false"}
DEBOUNCE_S = 0.5  # a drop shorter than this is a bounce (trigger.debounce_s); a bin's cycle takes seconds


class LiftTrigger(Protocol):
    def lift_of(self, frame: Frame) -> str | None: ...

    def close(self) -> None: ...


def parse_signal(payload: str) -> bool | None:
    """``1``/``UP``/``START`` -> True, ``0``/``DOWN``/``END`` -> False, JSON ``{"lifting": bool}``."""
    text = payload.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("lifting")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, bool) else None
    word = text.split()[-1].lower() if text else ""
    return True if word in UP_WORDS else False if word in DOWN_WORDS else None


class BurstTrigger:
    def lift_of(self, frame: Frame) -> str | None:
        return frame.burst

    def close(self) -> None:
        pass


class SignalTrigger:
    """A lift-arm level, set from another thread; frames see the lift it was in when they arrive.

    A contact bounces and a proximity sensor on a shaking arm flickers: a drop shorter than
    ``debounce_s`` followed by a rise is the same lift going on, where every flicker used to start
    a new lift (one bin counted as two, a phantom lift of one frame after the real one). So a lift
    ends only once the level has stayed down ``debounce_s``; a rise after that is the next lift.
    """

    def __init__(self, max_lift_s: float = 60.0, debounce_s: float = DEBOUNCE_S) -> None:
        self.max_lift_s, self.debounce_s = max_lift_s, debounce_s
        self._lock = threading.Lock()
        self._up, self._count, self._served, self._since = False, 0, 0, 0.0
        self._down_at: float | None = None  # when the level last fell; None before the first lift
        self._stuck_logged = 0  # the lift whose stuck signal was logged
        self._warnings = Throttled(log)

    def signal(self, up: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if up and not self._up:
                if self._down_at is None or now - self._down_at >= self.debounce_s:
                    self._count += 1
                    self._since = now
                else:
                    log.debug("lift signal: %.0f ms drop ignored (bounce)", (now - self._down_at) * 1000)
            elif not up and self._up:
                self._down_at = now
            self._up = up

    def lost(self) -> None:
        """The line carrying the level is gone (box unplugged, cable loose): the level is unknown, so
        the lift in progress ends as if the arm came down. It stayed up: the lift ran on while the
        truck drove away (until ``max_lift_s``), and the first ``1`` after the line came back, seen
        as no change, lost the next lift."""
        with self._lock:
            lifting = self._up
        if lifting:
            log.warning("lift signal line lost during lift %d: lift closed; the next UP starts a new one", self._count)
        self.signal(False)

    def feed(self, payload: str) -> None:
        level = parse_signal(payload)
        if level is None:
            self._warnings.warning("unknown", "lift signal: ignored %r (expected 1/0, UP/DOWN, START/END)",
                                   payload[:80])
        else:
            self.signal(level)

    def lift_of(self, frame: Frame) -> str | None:
        now = time.monotonic()
        with self._lock:
            lifting = self._up or (self._down_at is not None and now - self._down_at < self.debounce_s)
            if lifting and now - self._since > self.max_lift_s:
                if self._stuck_logged != self._count:  # once per lift, not once per frame
                    self._stuck_logged = self._count
                    log.warning("lift signal up for over %.0f s (stuck sensor?): lift %d closed; the next "
                                "lift starts when the signal falls and rises again", self.max_lift_s, self._count)
                return None  # signal stuck high (broken sensor): stop analysing frames
            if lifting or self._count > self._served:
                # the second case: a lift shorter than one frame interval still gets one frame
                self._served = self._count
                return f"signal-{self._count}"
            return None

    def close(self) -> None:
        pass


class SerialTrigger(SignalTrigger):
    def __init__(self, port: str, baud: int, max_lift_s: float = 60.0, debounce_s: float = DEBOUNCE_S) -> None:
        super().__init__(max_lift_s, debounce_s)
        self._reader = LineReader(port, baud, self.feed, name="lift-signal", on_lost=self.lost).start()

    def close(self) -> None:
        self._reader.stop()


class MqttTrigger(SignalTrigger):
    """Lift signal from a bridge topic (a CAN or GPIO gateway publishing on the truck's broker)."""

    def __init__(self, client: object, topic: str, max_lift_s: float = 60.0, debounce_s: float = DEBOUNCE_S) -> None:
        import paho.mqtt.client as mqtt

        super().__init__(max_lift_s, debounce_s)
        self._client: mqtt.Client = client  # type: ignore[assignment]
        self._client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self._client.on_message = lambda _c, _u, m: self.feed(m.payload.decode("utf-8", "replace"))
        # the bridge's level is unknown while disconnected: as a serial line unplugged (``lost``)
        self._client.on_disconnect = lambda *_a: self.lost()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class MotionTrigger:
    """Frame differencing inside the hopper: a lift lasts while enough of the hopper changes.

    Motion that never stops (rain on the hopper window, a loose camera shaking, engine vibration)
    made one endless lift: no event for the whole round, the tracker's state growing. So a lift
    is closed after ``max_lift_s`` of the frames' time (a bin's cycle takes 10-20 s), and no lift
    starts again until the hopper has been still ``quiet_frames`` frames: cutting the motion into
    lifts one after another would make up bins, each one blamed on whichever household's tag was
    read last. ``lifts_cut`` counts the lifts closed so.
    """

    SIDE = 160  # motion is measured on a tiny grey copy

    def __init__(self, region: Region, threshold: float = 0.02, quiet_frames: int = 8,
                 max_lift_s: float = 60.0) -> None:
        self.region, self.threshold, self.quiet_frames = region, threshold, quiet_frames
        self.max_lift_s = max_lift_s
        self._previous: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._count, self._quiet, self._active = 0, 0, False
        self._since: datetime | None = None  # the current lift's first frame time
        self._cut_at: datetime | None = None  # a lift was cut there: waiting for stillness
        self.lifts_cut = 0

    def motion(self, image: np.ndarray) -> float:
        """Share of hopper pixels that changed since the previous frame."""
        scale = self.SIDE / max(image.shape[:2])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self._mask is None or self._mask.shape != grey.shape:
            self._mask = self.region.mask(grey.shape[1], grey.shape[0]) > 0
            self._previous = None
        previous, self._previous = self._previous, grey
        if previous is None:
            return 0.0
        changed = cv2.absdiff(grey, previous) > 25
        return float(changed[self._mask].mean()) if self._mask.any() else 0.0

    def lift_of(self, frame: Frame) -> str | None:
        moving = self.motion(frame.image) >= self.threshold
        self._quiet = 0 if moving else self._quiet + 1
        if self._cut_at is not None:
            if self._quiet >= self.quiet_frames:
                log.info("hopper still again after %.0f s of motion: the motion trigger is armed again",
                         (frame.captured_at - self._cut_at).total_seconds() + self.max_lift_s)
                self._cut_at = None
            return None
        if moving and not self._active:
            self._active, self._count, self._since = True, self._count + 1, frame.captured_at
        elif self._active and self._quiet >= self.quiet_frames:
            self._active = False
        if self._active and self._since is not None:
            if frame.captured_at < self._since:  # the clock stepped back (NTP): count from here
                self._since = frame.captured_at
            if (frame.captured_at - self._since).total_seconds() > self.max_lift_s:
                self._active, self._cut_at = False, frame.captured_at
                self.lifts_cut += 1
                log.warning("motion in the hopper for over %.0f s (rain on the window? camera loose?): lift %d "
                            "closed; the next lift starts once the hopper has been still for %d frames",
                            self.max_lift_s, self._count, self.quiet_frames)
        return f"motion-{self._count}" if self._active else None

    def close(self) -> None:
        pass
