"""Events-only simulator throughput vs a bare paho publisher, side by side on the same broker.

    .venv/bin/python bench/simulate.py [--broker mqtt://127.0.0.1:1883] [--trucks 1000] [--connections 20]
                                       [--evidence-photos DIR]

Plans rounds for ``--trucks`` trucks on the Rennes streets (or the committed extract), then
publishes their lifts (judged events, QoS 1, every PUBACK awaited) through the simulator; the
baseline publishes, through one bare paho client per pool connection, also QoS 1 with every PUBACK
awaited, the very messages the simulator sends: built once beforehand by the same simulator (same
contents, same seed) and recorded, so the two move the same bytes (the lifts as
``LiftEvent.to_json()``, the edge's encoding, the trucks' heartbeats and, with
``--evidence-photos``, the evidence JPEGs of the lifts with a closed bag, as ``trivue simulate``
attaches them). The sizes are printed. Rounds alternate (best of ``--repeat``) because the CPU is
shared. Nothing subscribes: the topics are under a random prefix.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trivue.demo.place import SAMPLE_STREETS, SHARED_STREETS
from trivue.sim.contents import ContentMaker, EvidencePhotos
from trivue.sim.faults import FaultPlan
from trivue.sim.fleet import EventsRun
from trivue.sim.publisher import FleetLink
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import Scenario, ScenarioOptions, build_scenario
from trivue.sim.schedule import PlannedLift
from trivue.sim.truth import Truth
from vision.rules import SortingRules
from vision.schema import Stream

SEED = 1  # the simulator's draws: the recording and the timed run draw the same contents


@dataclass(frozen=True, slots=True)
class Message:
    truck_id: str
    suffix: str  # lift, stats, evidence/<event id>
    payload: bytes
    tracked: bool  # awaited by flush(), as FleetLink counts it


class RecordingLink:
    """Takes the simulator's messages in place of a ``FleetLink``, to be replayed by the baseline."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(self, truck_id: str, suffix: str, payload: bytes | str, retain: bool = False,
                tracked: bool = True) -> None:
        data = payload.encode() if isinstance(payload, str) else payload  # as paho sends a str
        self.messages.append(Message(truck_id, suffix, data, tracked))


def events_run(link: FleetLink | RecordingLink, photos: EvidencePhotos | None) -> EventsRun:
    # EventsRun only calls publish() without faults: a RecordingLink serves in place of a FleetLink.
    return EventsRun(link, ContentMaker(SortingRules.load(), Stream.recyclables),  # type: ignore[arg-type]
                     FaultPlan(), Truth({}, {}), random.Random(SEED), photos=photos)


def recorded_messages(lifts: list[PlannedLift], photos: EvidencePhotos | None) -> list[Message]:
    """What the simulator publishes for ``lifts``, byte for byte but for each lift's random event id."""
    link = RecordingLink()
    events_run(link, photos).run(lifts, 0.0)
    return link.messages


def sizes_line(messages: list[Message]) -> str:
    """Count and bytes of each kind of message, as published."""
    kinds: dict[str, list[int]] = {}
    for message in messages:
        kinds.setdefault(message.suffix.split("/")[0], []).append(len(message.payload))
    return "; ".join(f"{len(sizes):,} {kind} messages, {statistics.mean(sizes):,.0f} bytes on average "
                     f"({min(sizes):,}-{max(sizes):,}), {sum(sizes) / 1e6:,.2f} MB"
                     for kind, sizes in kinds.items())


def simulator(broker: str, scenario: Scenario, lifts: list[PlannedLift], connections: int,
              photos: EvidencePhotos | None) -> float:
    prefix = f"bench-sim-{uuid.uuid4().hex[:8]}"
    link = FleetLink(broker, prefix, scenario.trucks, connections, status=False).start()
    run = events_run(link, photos)
    started = time.perf_counter()
    run.run(lifts, 0.0)
    assert link.flush(120), "simulator: acknowledgements missing"
    took = time.perf_counter() - started
    link.stop(clean=False)
    return len(lifts) / took


def bare(broker: str, trucks: list[str], messages: list[Message], lifts: int, connections: int) -> float:
    """Lifts a second when the simulator's recorded messages are published by a bare client."""
    prefix = f"bench-bare-{uuid.uuid4().hex[:8]}"
    link = FleetLink(broker, prefix, trucks, connections, status=False).start()
    started = time.perf_counter()
    for message in messages:
        link.publish(message.truck_id, message.suffix, message.payload, tracked=message.tracked)
    assert link.flush(120), "baseline: acknowledgements missing"
    took = time.perf_counter() - started
    link.stop(clean=False)
    return lifts / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--trucks", type=int, default=1000)
    parser.add_argument("--round-km", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--evidence-photos", type=Path, metavar="DIR",
                        help="JPEGs of closed bags sent as the evidence photos of lifts with a bag, as "
                             "`trivue simulate --evidence-photos` does (default: lifts only)")
    args = parser.parse_args()
    photos = None
    if args.evidence_photos is not None:
        try:
            photos = EvidencePhotos(sorted(args.evidence_photos.glob("*")))
        except ValueError as error:
            parser.error(f"--evidence-photos {args.evidence_photos}: {error}")
    streets = SHARED_STREETS if SHARED_STREETS.is_file() else SAMPLE_STREETS
    planned = time.perf_counter()
    network = StreetNetwork.from_file(streets, "Rennes")
    scenario = build_scenario(network, ScenarioOptions(trucks=args.trucks, round_km=args.round_km))
    lifts = scenario.lifts(datetime.now(UTC))
    print(f"{streets.name}: {args.trucks} trucks, {len(lifts)} lifts planned in {time.perf_counter() - planned:.1f} s")
    messages = recorded_messages(lifts, photos)
    print(f"published by each side: {sizes_line(messages)}")
    sim, raw = [], []
    for _ in range(args.repeat):
        raw.append(bare(args.broker, scenario.trucks, messages, len(lifts), args.connections))
        sim.append(simulator(args.broker, scenario, lifts, args.connections, photos))
    print(f"bare paho QoS 1 publisher: {max(raw):,.0f} lifts/s, the same messages (best of {args.repeat})")
    print(f"simulator (events mode):   {max(sim):,.0f} lifts/s (best of {args.repeat})")
    print(f"simulator / bare: {max(sim) / max(raw):.2f}")


if __name__ == "__main__":
    main()
