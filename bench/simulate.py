"""Events-only simulator throughput vs a bare paho publisher, side by side on the same broker.

    .venv/bin/python bench/simulate.py [--broker mqtt://127.0.0.1:1883] [--trucks 1000] [--connections 20]

Plans rounds for ``--trucks`` trucks on the Rennes streets (or the committed extract), then
publishes their lifts (judged events, QoS 1, every PUBACK awaited) through the simulator; the
baseline publishes the same number of same-sized payloads through one bare paho client per pool
connection, also QoS 1 with every PUBACK awaited. Rounds alternate (best of ``--repeat``) because
the CPU is shared. Nothing subscribes: the topics are under a random prefix.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trivue.demo.place import SAMPLE_STREETS, SHARED_STREETS
from trivue.sim.contents import ContentMaker
from trivue.sim.faults import FaultPlan
from trivue.sim.fleet import EventsRun
from trivue.sim.publisher import FleetLink
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import ScenarioOptions, build_scenario
from trivue.sim.truth import Truth
from vision.rules import SortingRules
from vision.schema import Stream


def simulator(broker: str, scenario, lifts: list, connections: int) -> float:
    prefix = f"bench-sim-{uuid.uuid4().hex[:8]}"
    link = FleetLink(broker, prefix, scenario.trucks, connections, status=False).start()
    run = EventsRun(link, ContentMaker(SortingRules.load(), Stream.recyclables), FaultPlan(),
                    Truth({}, {}), random.Random(1))
    started = time.perf_counter()
    run.run(lifts, 0.0)
    assert link.flush(120), "simulator: acknowledgements missing"
    took = time.perf_counter() - started
    link.stop(clean=False)
    return len(lifts) / took


def bare(broker: str, count: int, size: int, connections: int) -> float:
    prefix = f"bench-bare-{uuid.uuid4().hex[:8]}"
    trucks = [f"t{i}" for i in range(connections)]
    link = FleetLink(broker, prefix, trucks, connections, status=False).start()
    payload = b"x" * size
    started = time.perf_counter()
    for i in range(count):
        link.publish(trucks[i % connections], "lift", payload)
    assert link.flush(120), "baseline: acknowledgements missing"
    took = time.perf_counter() - started
    link.stop(clean=False)
    return count / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--trucks", type=int, default=1000)
    parser.add_argument("--round-km", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    streets = SHARED_STREETS if SHARED_STREETS.is_file() else SAMPLE_STREETS
    planned = time.perf_counter()
    network = StreetNetwork.from_file(streets, "Rennes")
    scenario = build_scenario(network, ScenarioOptions(trucks=args.trucks, round_km=args.round_km))
    lifts = scenario.lifts(datetime.now(UTC))
    print(f"{streets.name}: {args.trucks} trucks, {len(lifts)} lifts planned in {time.perf_counter() - planned:.1f} s")
    size = 650  # bytes of a typical simulated LiftEvent
    sim, raw = [], []
    for _ in range(args.repeat):
        raw.append(bare(args.broker, len(lifts), size, args.connections))
        sim.append(simulator(args.broker, scenario, lifts, args.connections))
    print(f"bare paho QoS 1 publisher: {max(raw):,.0f} msg/s (best of {args.repeat})")
    print(f"simulator (events mode):   {max(sim):,.0f} lifts/s (best of {args.repeat})")
    print(f"simulator / bare: {max(sim) / max(raw):.2f}")


if __name__ == "__main__":
    main()
