"""Faults injected on demand: what a real fleet does to a server, reproducibly (seeded).

- connectivity loss: during a window some trucks publish nothing; their lifts wait (as in the
  edge outbox) and all go out, in order, when the link is back;
- broker restarts (when the simulator runs the embedded broker): paho reconnects and re-sends
  what was not acknowledged;
- duplicated deliveries: the same event (same ``event_id``) published twice;
- clock skew: some trucks' clocks are off by a fixed amount (timestamps shifted);
- malformed messages: invalid JSON, schema violations and topic/payload truck-id mismatches on
  the lift topic, which the server must put in its dead letters;
- a dark camera: one truck's hopper lights go out for a stretch of its lifts; in full mode its
  agent gets dark frames and finds the view unusable itself, in events mode its lifts are sent as
  such a truck sends them (``view_unusable``, nothing counted) with its heartbeat's ``camera_view``.
  Those lifts are judged by nobody: the truth keeps them out of its streets' figures.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field

from base.errors import CliError


@dataclass(frozen=True, slots=True)
class Window:
    start_s: float  # simulated seconds after the start of the rounds
    duration_s: float

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.duration_s

    @classmethod
    def parse(cls, text: str) -> Window:
        """``START+DURATION`` in simulated seconds, e.g. ``600+300``."""
        try:
            start, duration = (float(v) for v in text.split("+"))
        except ValueError:
            raise CliError(f"--outage {text!r}: expected START+DURATION in seconds, e.g. 600+300") from None
        if start < 0 or duration <= 0:
            raise CliError(f"--outage {text!r}: start must be >= 0 and duration > 0")
        return cls(start, duration)


@dataclass(frozen=True, slots=True)
class DarkCamera:
    """``truck_id``'s camera sees nothing (lights out) for ``lifts`` lifts from its lift ``first``
    (lift sequences: the demo's live trucks number each round's lifts from 0, so it recurs there)."""

    truck_id: str
    first: int
    lifts: int

    def __post_init__(self) -> None:
        if self.first < 0 or self.lifts < 1:
            raise ValueError(f"dark camera of {self.truck_id}: first {self.first} >= 0 and lifts {self.lifts} >= 1 "
                             "wanted")

    @classmethod
    def parse(cls, text: str) -> DarkCamera:
        """``TRUCK:FIRST+LIFTS``, e.g. ``sim-02:100+40`` (``--camera-dark``)."""
        truck, _, stretch = text.rpartition(":")
        try:
            first, lifts = (int(v) for v in stretch.split("+"))
        except ValueError:
            raise CliError(f"--camera-dark {text!r}: expected TRUCK:FIRST+LIFTS, e.g. sim-02:100+40") from None
        if not truck or first < 0 or lifts < 1:
            raise CliError(f"--camera-dark {text!r}: a truck id, FIRST >= 0 and LIFTS >= 1 wanted")
        return cls(truck, first, lifts)

    def holds(self, truck_id: str, sequence: int) -> bool:
        """Is this lift (the truck's ``sequence``-th) shot in the dark?"""
        return truck_id == self.truck_id and self.first <= sequence < self.first + self.lifts


@dataclass(frozen=True, slots=True)
class FaultPlan:
    outages: tuple[Window, ...] = ()
    outage_share: float = 0.5  # share of trucks hit by each outage
    broker_restarts: tuple[float, ...] = ()  # simulated seconds
    duplicates: float = 0.0  # probability that a lift is delivered twice
    skew_share: float = 0.0  # share of trucks whose clock is off
    skew_s: float = 0.0  # by this much (sign drawn per truck)
    malformed: float = 0.0  # probability of a malformed message after a lift
    skews: dict[str, float] = field(default_factory=dict)
    dark: DarkCamera | None = None

    def camera_dark(self, truck_id: str, sequence: int) -> bool:
        return self.dark is not None and self.dark.holds(truck_id, sequence)

    def with_skews(self, trucks: list[str], rng: random.Random) -> FaultPlan:
        chosen = rng.sample(trucks, round(len(trucks) * self.skew_share)) if self.skew_s else []
        skews = {t: self.skew_s * rng.choice((-1, 1)) for t in chosen}
        return FaultPlan(self.outages, self.outage_share, self.broker_restarts, self.duplicates,
                         self.skew_share, self.skew_s, self.malformed, skews, self.dark)

    def offline(self, truck_id: str, t_s: float) -> Window | None:
        """The outage window holding this truck at ``t_s``, if any (membership is stable per truck)."""
        for index, window in enumerate(self.outages):
            if window.holds(t_s) and random.Random(f"{index}:{truck_id}").random() < self.outage_share:
                return window
        return None


def malformed_payload(kind: int, truck_id: str, good: str) -> bytes:
    """A broken lift message: three kinds in turn, each a distinct dead-letter reason."""
    if kind % 3 == 0:
        return good[: len(good) // 2].encode()  # truncated: not JSON
    data = json.loads(good)
    data["event_id"] = str(uuid.uuid4())  # never the id of a real lift
    if kind % 3 == 1:
        data.pop("stream", None)  # schema violation: a required field is missing
        data["score"] = -1
        return json.dumps(data).encode()
    data["truck_id"] = f"{truck_id}-impostor"  # topic and payload disagree
    return json.dumps(data).encode()
