"""The demo's trucks: a burst of history, then live rounds that start over when they end."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from trivue.contents import ContentMaker, EvidencePhotos
from trivue.faults import FaultPlan
from trivue.fleet import EventsRun
from trivue.publisher import FleetLink
from trivue.schedule import TruckDay, index_by_link
from trivue.truth import Truth

log = logging.getLogger(__name__)


def _events_run(show: Any, link: FleetLink, truth: Truth) -> EventsRun:
    from trivue.trucks import PhotoPool
    from vision.rules import SortingRules

    contents = ContentMaker(SortingRules.load(), show.stream)
    photos = EvidencePhotos(list(PhotoPool.default().contaminated))
    return EventsRun(link, contents, FaultPlan(), truth, show.scenario.rng, photos=photos)


def publish_history(show: Any, days: int) -> int:
    """``days`` past days of the same rounds as judged events, as fast as the broker takes them."""
    from rich.progress import Progress

    from trivue.showcase import history_start

    scenario = show.scenario
    lifts = scenario.lifts(history_start(days), days, show.options.driving)
    truth = Truth({"mode": "history", "days": days}, {s.key: r for s, r in scenario.rates.items()})
    link = FleetLink(show.broker.url, show.settings.topic_prefix, scenario.trucks, connections=1,
                      client_prefix="trivue-history", status=False)
    link.start()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"history: {days} days of rounds", total=len(lifts))
            _events_run(show, link, truth).run(lifts, 0.0, lambda: progress.advance(task))
            link.flush(60)
    finally:
        link.stop(clean=False)
    truth.write(show.data_dir / "simulation" / "history")
    return len(lifts)


def start_event_trucks(show: Any) -> None:
    """Live trucks that publish judged events (no model): one thread plays every truck's round."""
    from trivue.showcase import live_start

    scenario = show.scenario
    show.link = FleetLink(show.broker.url, show.settings.topic_prefix, scenario.trucks).start()
    truth = Truth({"mode": "live-events"}, {s.key: r for s, r in scenario.rates.items()})

    def loop() -> None:
        run = _events_run(show, show.link, truth)
        while not show.stop_event.is_set():
            lifts = scenario.lifts(live_start(), 1, show.options.driving)
            run.run(lifts, show.args.speed, show.lift_done, stop=show.stop_event)

    _spawn(show, loop, "live-events")


def start_edge_trucks(show: Any, model: Path) -> None:
    """Live trucks, each running the real edge agent on bursts of real photos (``trivue.trucks``)."""
    from trivue.fullmode import Pace
    from trivue.showcase import live_start, truck_rng
    from trivue.trucks import EdgeTruck, PhotoPool, drive, edge_settings

    logging.getLogger("edge").setLevel(logging.WARNING if not show.args.verbose else logging.DEBUG)
    photos = PhotoPool.default()
    scenario = show.scenario
    by_link = index_by_link(scenario.households)
    for truck_id in scenario.trucks:
        settings = edge_settings(truck_id, show.data_dir / "demo-trucks", show.broker.url,
                                 show.settings.topic_prefix, show.stream, model)
        truck = EdgeTruck(settings, photos, truck_rng(show.args.seed, truck_id)).start()
        show.trucks.append(truck)
        day = TruckDay(scenario.network, by_link, show.options.driving, truck_rng(show.args.seed + 1, truck_id))

        def loop(truck: EdgeTruck = truck, day: TruckDay = day) -> None:
            while not show.stop_event.is_set():
                lifts = day.lifts(truck.truck_id, scenario.rounds[truck.truck_id], live_start())
                lifts = [replace(x, sequence=i) for i, x in enumerate(lifts)]
                drive(truck, lifts, Pace(lifts, show.args.speed, show.stop_event).at, show.lift_done,
                      show.stop_event)

        _spawn(show, loop, truck_id)


def _spawn(show: Any, target: Any, name: str) -> None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    show.threads.append(thread)
