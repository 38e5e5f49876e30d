"""The demo's trucks: a burst of history, then live rounds that start over when they end."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from rich.progress import Progress

from server.config import ServerSettings
from trivue.broker import EmbeddedBroker
from trivue.demo.options import DemoOptions
from trivue.sim.contents import ContentMaker, EvidencePhotos
from trivue.sim.faults import DarkCamera, FaultPlan
from trivue.sim.fleet import EventsRun
from trivue.sim.fullmode import Pace
from trivue.sim.publisher import FleetLink
from trivue.sim.scenario import Scenario, ScenarioOptions
from trivue.sim.schedule import TruckDay, index_by_link
from trivue.sim.trucks import EdgeTruck, PhotoPool, drive, edge_settings
from trivue.sim.truth import Truth
from vision.rules import SortingRules
from vision.schema import Stream

log = logging.getLogger(__name__)

# The last truck's hopper lights go out for a while, so that the fleet page's « Vue de caméra
# inutilisable » and the data-quality page's lifts not judged are on show (docs/demo.md): in the
# history once (its lifts 150 to 189), live at each round (its lifts 8 to 47, ~1.5 min at x10).
DARK_HISTORY = (150, 40)
DARK_LIVE = (8, 40)


def dark_camera_faults(show: LiveShow, first_and_lifts: tuple[int, int]) -> FaultPlan:
    return FaultPlan(dark=DarkCamera(show.scenario.trucks[-1], *first_and_lifts))


class LiveShow(Protocol):
    """What the trucks need of the demo (``trivue.demo.showcase.Showcase``): where to publish, which
    rounds, and where to register their threads so that the demo can stop them."""

    options: DemoOptions
    settings: ServerSettings
    scenario: Scenario
    scenario_options: ScenarioOptions
    stream: Stream
    broker: EmbeddedBroker | None
    data_dir: Path
    stop_event: threading.Event
    threads: list[threading.Thread]
    trucks: list[EdgeTruck]
    link: FleetLink | None

    def lift_done(self, *_: object) -> None: ...


def live_start() -> datetime:
    return datetime.now(UTC)


def history_start(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def truck_rng(seed: int, truck_id: str) -> random.Random:
    return random.Random(f"{seed}:{truck_id}")


def _broker_url(show: LiveShow) -> str:
    assert show.broker is not None, "the broker starts before the trucks"
    return show.broker.url


def _events_run(show: LiveShow, link: FleetLink, truth: Truth, faults: FaultPlan) -> EventsRun:
    contents = ContentMaker(SortingRules.load(), show.stream)
    photos = EvidencePhotos(list(PhotoPool.default().contaminated))
    return EventsRun(link, contents, faults, truth, show.scenario.rng, photos=photos)


def publish_history(show: LiveShow, days: int) -> tuple[int, int]:
    """``days`` past days of the same rounds as judged events, as fast as the broker takes them;
    returns the lifts and those of them not judged (the dark camera's)."""
    scenario = show.scenario
    lifts = scenario.lifts(history_start(days), days, show.scenario_options.driving)
    truth = Truth({"mode": "history", "days": days}, {s.key: r for s, r in scenario.rates.items()})
    link = FleetLink(_broker_url(show), show.settings.topic_prefix, scenario.trucks, connections=1,
                      client_prefix="trivue-history", status=False)
    link.start()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"history: {days} days of rounds", total=len(lifts))
            run = _events_run(show, link, truth, dark_camera_faults(show, DARK_HISTORY))
            run.run(lifts, 0.0, lambda: progress.advance(task))
            link.flush(60)
    finally:
        link.stop(clean=False)
    truth.write(show.data_dir / "simulation" / "history")
    return len(lifts), sum(bool(row["view_unusable"]) for row in truth.rows)


def start_event_trucks(show: LiveShow) -> None:
    """Live trucks that publish judged events (no model): one thread plays every truck's round."""
    scenario = show.scenario
    link = show.link = FleetLink(_broker_url(show), show.settings.topic_prefix, scenario.trucks).start()
    truth = Truth({"mode": "live-events"}, {s.key: r for s, r in scenario.rates.items()})

    def loop() -> None:
        run = _events_run(show, link, truth, dark_camera_faults(show, DARK_LIVE))
        while not show.stop_event.is_set():
            lifts = scenario.lifts(live_start(), 1, show.scenario_options.driving)
            run.run(lifts, show.options.speed, show.lift_done, stop=show.stop_event)

    _spawn(show, loop, "live-events")


def start_edge_trucks(show: LiveShow, model: Path) -> None:
    """Live trucks, each running the real edge agent on bursts of real photos (``trivue.sim.trucks``)."""
    logging.getLogger("edge").setLevel(logging.WARNING if not show.options.verbose else logging.DEBUG)
    photos = PhotoPool.default()
    scenario = show.scenario
    by_link = index_by_link(scenario.households)
    faults = dark_camera_faults(show, DARK_LIVE)
    for truck_id in scenario.trucks:
        settings = edge_settings(truck_id, show.data_dir / "demo-trucks", _broker_url(show),
                                 show.settings.topic_prefix, show.stream, model)
        truck = EdgeTruck(settings, photos, truck_rng(show.options.world.seed, truck_id), faults=faults).start()
        show.trucks.append(truck)
        day = TruckDay(scenario.network, by_link, show.scenario_options.driving,
                       truck_rng(show.options.world.seed + 1, truck_id))

        def loop(truck: EdgeTruck = truck, day: TruckDay = day) -> None:
            while not show.stop_event.is_set():
                lifts = day.lifts(truck.truck_id, scenario.rounds[truck.truck_id], live_start())
                lifts = [replace(x, sequence=i) for i, x in enumerate(lifts)]
                drive(truck, lifts, Pace(lifts, show.options.speed, show.stop_event).at, show.lift_done,
                      show.stop_event)

        _spawn(show, loop, truck_id)


def _spawn(show: LiveShow, target: Callable[[], None], name: str) -> None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    show.threads.append(thread)
