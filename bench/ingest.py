"""Ingest throughput: lifts stored per second vs a subscriber that does nothing, side by side.

    python bench/ingest.py [-n 5000] [--database-url URL] [--broker-url mqtt://127.0.0.1:1883]
                           [--variants plain,batched,path] (also per-lift) [--workload fleet|scatter]
                           [--history 1000000]

Live runs publish N real LiftEvents with a real paho client at QoS 1, from a process of its own
(``Publisher``: a truck is not in the server's process), through the same broker while the
subscriber listens: the raw run times a bare QoS 1 subscriber until it has received all
N; the stored runs time the real ``Ingest`` (validation, street matching, idempotent insert,
aggregates, acks after commit) until all N are committed. A live run is
bounded by the publisher, so backlog runs then measure capacity: N messages wait in the broker
for a persistent session, and the clock runs from reconnect until all N are received / stored
(what happens after a server restart or an outage). Ratios are stored / raw (target >= 0.5):
the medians' ratio, and each round's (``each round``: the stored run against the raw run just
before it, so that the machine's load drifting between rounds does not move the ratio).
Mosquitto keeps at most ``max_queued_messages`` (default 1000) for an offline session and drops
the rest, so backlog runs default to 1000 messages; raise it in mosquitto.conf for production.

Variants, each against the same raw run of its round: ``plain`` (lifts without GPS, no street
matching), ``per-lift`` (GPS fixes over the Rennes centre streets, ``Locator.locate`` once per
lift: the ingest before batching), ``batched`` (the same fixes, ``Locator.locate_many`` once
per ingest batch, each lift on its own: the ingest before issue 16) and ``path`` (what the server
does: ``locate_many`` plus the truck's path, ``server.ingest.tracks``).

Workloads: ``fleet`` (the default) is the first N lifts, in time order, of ``trivue simulate``'s
20 trucks driving rounds over the Rennes centre streets with 10 m of GPS noise: successive lifts
of a truck 10-50 m apart, 20 trucks in every batch. ``scatter`` (the only workload until
2026-12-03) is one truck whose fixes jump ~250 m between lifts: cheaper for the path than a real
round, since fixes that far apart skip the route between them.

A third table times the store alone (``Inbox.write`` and commit over batches of
``ingest_batch_size``, no broker): the lifts/s one ingest worker can write, the sizing figure of
docs/deployment.md. With only 1,000 messages the backlog runs last ~0.1 s and mostly show the
first batch's wait (``ingest_batch_wait_ms``); the store capacity is the steadier capacity figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import LocatorCache, default_locator_factory
from server.config import ConfigError, ServerSettings, load_settings
from server.db import make_engine, utcnow
from server.ingest.aggregates import StreetLocator
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.subscriber import Ingest, connect_properties, make_client
from server.migrate import upgrade_database
from server.streets.locator import Locator
from tests.server.events import lift_event

CENTRE = (48.1110, -1.6800)  # Rennes, inside tests/fixtures/geodata/rennes-centre.geojson


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    events: int
    seconds: float
    # CPU time of this process over the run, all its threads (network thread, writer), not the
    # publisher's: what a shared machine does not distort, and the cost per lift behind the rate
    cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


Message = tuple[str, bytes]  # (topic under the prefix, payload)


def scatter_messages(n: int, gps: bool) -> list[Message]:
    """N distinct lifts of one truck, half contaminated, GPS jumping ~250 m between successive lifts
    over ~500 m of the Rennes centre: many candidate streets and a street-day row per lift, but
    successive fixes over ``FAR_M`` (200 m) apart skip the route, so the fleet workload costs the
    path more."""
    out = []
    for i in range(n):
        fix = (CENTRE[0] + ((i * 37) % 100 - 50) * 5e-5, CENTRE[1] + ((i * 53) % 100 - 50) * 7e-5) if gps else None
        counts = {"bag": 1, "bottle": 2} if i % 2 else {"bottle": 2}
        event = lift_event("bench-truck", sequence=i, counts=counts, gps=fix)
        out.append(("bench-truck/lift", event.to_json().encode()))
    return out


def fleet_messages(n: int, gps: bool, sigma_m: float = 10.0) -> list[Message]:
    """The first N lifts, in time order, of ``trivue simulate``'s fleet (20 trucks) driving rounds
    over the Rennes centre streets with ``sigma_m`` of GPS noise: what a city sends."""
    from bench.streets import fleet_payload, simulated_lifts  # the accuracy bench's fleet, lifts and payloads
    from trivue.sim.contents import ContentMaker
    from vision.rules import SortingRules
    from vision.schema import Stream

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/streets.db")
        upgrade_database(engine)
        _import_streets(sessionmaker(engine))
        round_km = 3.0
        while len(lifts := simulated_lifts(engine, 20, round_km, sigma_m, seed=7)) < n:
            round_km *= 1.5  # longer rounds until the day holds N lifts
        engine.dispose()
    contents, rng = ContentMaker(SortingRules.load(), Stream.recyclables), random.Random(1)
    return [(f"{lift.truck_id}/lift", fleet_payload(lift if gps else replace(lift, gps=None), contents, rng))
            for lift in lifts[:n]]


WORKLOADS = {"fleet": fleet_messages, "scatter": scatter_messages}


def median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]


def _connected_publisher(broker: tuple[str, int]) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(*broker)
    client.loop_start()
    return client


def _publish_and_close(client: mqtt.Client, prefix: str, messages: list[Message]) -> None:
    infos = [client.publish(f"{prefix}/{topic}", payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def publish_all(broker: tuple[str, int], prefix: str, messages: list[Message]) -> None:
    _publish_and_close(_connected_publisher(broker), prefix, messages)


def _publish_when_told(broker: tuple[str, int], prefix: str, messages: list[Message], ready: Any, go: Any) -> None:
    client = _connected_publisher(broker)
    ready.set()
    go.wait()
    _publish_and_close(client, prefix, messages)


class Publisher:
    """The trucks' side of a live run, in a process of its own, connected before the clock starts.

    A truck never shares the server's interpreter. A publisher thread inside the measured process
    (as this bench had it until 2026-12-03) competes with the subscriber and the ingest writer for
    one GIL, so the live runs measured the publisher (raw 3,764 lifts/s) as much as the ingest.
    Calling the object starts the publishing and returns once the broker has acknowledged all.
    """

    def __init__(self, broker: tuple[str, int], prefix: str, messages: list[Message]) -> None:
        context = multiprocessing.get_context("spawn")
        ready, self._go = context.Event(), context.Event()
        self._process = context.Process(target=_publish_when_told, args=(broker, prefix, messages, ready, self._go),
                                        daemon=True)
        self._process.start()
        if not ready.wait(60):
            self._process.kill()
            raise SystemExit("the publisher process did not connect to the broker in 60 s")

    def __call__(self) -> None:
        self._go.set()
        self._process.join(180)


def timed(name: str, n: int, publish: Callable[[], None], done: Callable[[], int], progress: Progress) -> Run:
    task = progress.add_task(name, total=n)
    started, cpu = time.perf_counter(), time.process_time()
    publisher = threading.Thread(target=publish)
    publisher.start()
    while (count := done()) < n:
        progress.update(task, completed=count)
        if time.perf_counter() - started > 120:
            raise SystemExit(f"{name}: only {count} of {n} after 120 s (did the broker drop a queue?)")
        time.sleep(0.01)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    progress.update(task, completed=n)
    publisher.join()
    return Run(name, n, elapsed, cpu)


def raw_run(settings: ServerSettings, messages: list[Message], progress: Progress) -> Run:
    received = 0

    def on_message(*_args: object) -> None:
        nonlocal received
        received += 1

    ready = threading.Event()
    client = make_client(settings, client_id=f"bench-raw-{uuid.uuid4().hex[:6]}", manual_ack=False)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.connect(*broker_of(settings), properties=connect_properties(settings))  # same in-flight window
    client.subscribe(f"{settings.topic_prefix}/+/lift", qos=1)
    client.loop_start()
    ready.wait(10)
    try:
        return timed("raw subscriber", len(messages), Publisher(broker_of(settings), settings.topic_prefix, messages),
                     lambda: received, progress)
    finally:
        client.disconnect()
        client.loop_stop()


def raw_backlog(settings: ServerSettings, messages: list[Message], progress: Progress) -> Run:
    received = 0
    ready = threading.Event()

    def on_message(*_args: object) -> None:
        nonlocal received
        received += 1

    def connect() -> mqtt.Client:
        client = make_client(settings, client_id=f"{settings.mqtt_client_id}-raw", manual_ack=False)
        client.on_message = on_message
        client.on_subscribe = lambda *_a: ready.set()
        client.on_connect = lambda c, *_a: c.subscribe(f"{settings.topic_prefix}/+/lift", qos=1)
        client.connect(*broker_of(settings), clean_start=False, properties=connect_properties(settings))
        client.loop_start()
        return client

    client = connect()
    ready.wait(10)
    client.disconnect()
    client.loop_stop()
    publish_all(broker_of(settings), settings.topic_prefix, messages)
    holder: list[mqtt.Client] = []
    try:
        return timed("raw subscriber, backlog", len(messages), lambda: holder.append(connect()),
                     lambda: received, progress)
    finally:
        for client in holder:
            client.disconnect()
            client.loop_stop()


class PerLift:
    """Hides ``locate_many``: the ingest then matches lift by lift, as it did before batching."""

    def __init__(self, inner: StreetLocator) -> None:
        self.locate = inner.locate


VARIANTS = {"plain": "no GPS, no matching", "per-lift": "streets, locate per lift",
            "batched": "streets, locate_many per batch, no path",
            "path": "streets, locate_many + truck path (now)"}


def _inbox(settings: ServerSettings, variant: str) -> tuple[Engine, sessionmaker[Session], Inbox, Metrics]:
    """A migrated database (with the Rennes centre streets unless ``plain``) and the server's Inbox."""
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    if variant != "plain":
        _import_streets(sessions)
    metrics = Metrics()

    def per_lift(session: Session) -> StreetLocator | None:
        inner = default_locator_factory(session)
        return PerLift(inner) if inner is not None else None

    def one_point(session: Session) -> StreetLocator | None:  # the index without trajectory matching
        return Locator.from_session(session)

    factories = {"per-lift": per_lift, "batched": one_point}
    locator = LocatorCache(factories.get(variant, default_locator_factory))
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), metrics, locator)
    with sessions() as session:
        locator(session)  # build the street index before the clock starts, as a running server has
    return engine, sessions, inbox, metrics


def _import_streets(sessions: sessionmaker[Session]) -> None:
    from tests.server.streets_fixture import import_rennes

    import_rennes(sessions)


def fill_history(engine: Engine, lifts: int, trucks: list[str]) -> None:
    """``lifts`` lifts of these trucks already stored, a year of them before the workload's day (what
    a running deployment's table holds, for the reads by truck), generated in SQL by
    bench/queries.py's generator; its street aggregates are left out (ingest only adds to them)."""
    from sqlalchemy import func, select, text

    from bench.queries import generate_sql
    from server.streets.models import Street

    with Session(engine) as session:
        first, count = session.execute(select(func.min(Street.id), func.count()).select_from(Street)).one()
        session.execute(text(generate_sql(engine.dialect.name, lifts, first or 1, max(count, 7))),
                        {"lo": 1, "hi": lifts})
        names = " ".join(f"WHEN {k} THEN '{truck}'" for k, truck in enumerate(trucks))
        session.execute(text(f"UPDATE lifts SET truck_id = CASE id % {len(trucks)} {names} END"))
        session.commit()


def capacity_run(settings: ServerSettings, messages: list[Message], variant: str, history: int = 0) -> Run:
    """What one process can store: ``Inbox.write`` + commit over full batches, no broker, no network
    thread competing for the GIL. The sizing figure (lifts/s per ingest worker). ``history``: lifts
    of the same trucks already stored (``fill_history``)."""
    engine, sessions, inbox, _metrics = _inbox(settings, variant)
    if history:
        fill_history(engine, history, sorted({topic.split("/")[0] for topic, _ in messages}))
    batch = [MqttMessage(f"{settings.topic_prefix}/{topic}", payload, utcnow(), i, 1)
             for i, (topic, payload) in enumerate(messages)]
    size = settings.ingest_batch_size
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(batch), size):
        with sessions() as session, session.begin():
            inbox.write(session, batch[i:i + size])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return Run(f"store capacity, {VARIANTS[variant]}", len(messages), elapsed, cpu)


def stored_run(settings: ServerSettings, messages: list[Message], variant: str, progress: Progress,
               backlog: bool = False) -> Run:
    engine, sessions, inbox, metrics = _inbox(settings, variant)
    ingest = Ingest(settings, sessions, inbox, metrics)
    if backlog:  # register the persistent session, leave, let the backlog pile up in the broker
        ingest.start()
        ingest.wait_connected(10)
        ingest.stop()
        publish_all(broker_of(settings), settings.topic_prefix, messages)
        ingest = Ingest(settings, sessions, inbox, metrics)
        start = ingest.start
    else:
        ingest.start()
        ingest.wait_connected(10)
        start = Publisher(broker_of(settings), settings.topic_prefix, messages)
    try:
        return timed(f"stored, {VARIANTS[variant]}" + (", backlog" if backlog else ""), len(messages), start,
                     lambda: int(metrics.value("trivue_ingest_lifts_stored_total")), progress)
    finally:
        ingest.stop()
        engine.dispose()


def broker_of(settings: ServerSettings) -> tuple[str, int]:
    from urllib.parse import urlsplit

    url = urlsplit(settings.broker_url)
    return url.hostname or "127.0.0.1", url.port or 1883


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--events", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=1000,
                        help="messages in the backlog runs (at most the broker's max_queued_messages)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--broker-url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="fleet",
                        help="fleet: 20 simulated trucks on their rounds, 10 m GPS noise; "
                             "scatter: one truck jumping ~250 m between lifts (fixes over 200 m apart skip the route)")
    parser.add_argument("--history", type=int, default=0,
                        help="store capacity runs: lifts of the same trucks already stored (a year before), "
                             "e.g. 1000000: what a deployment's table holds after months")
    parser.add_argument("--variants", default="plain,batched,path",
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="ingest_batch_size for every run (default: the server's own)")
    args = parser.parse_args()
    batch = {} if args.batch_size is None else {"ingest_batch_size": args.batch_size}
    try:  # a bad size stops here with the setting's own message, not after the first runs
        load_settings(env={}, data_dir=Path(tempfile.gettempdir()), **batch)
    except ConfigError as error:
        parser.error(f"--batch-size: {error}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    console = Console(width=max(Console().width, 120))  # tables unwrapped when piped to a file
    # (mode, variant or "raw") -> runs; raw runs publish GPS fixes too: the payloads differ by a few bytes only
    make = WORKLOADS[args.workload]
    with_gps, without_gps = make(max(args.events, args.backlog), True), make(max(args.events, args.backlog), False)
    results: dict[tuple[bool, str], list[Run]] = {}
    capacity: dict[str, list[Run]] = {}
    for _ in range(args.repeat):  # the machine is shared: the median of a few rounds is steadier
        for variant in variants:
            with tempfile.TemporaryDirectory() as folder:
                settings = load_settings(env={}, data_dir=Path(folder), database_url=args.database_url,
                                         topic_prefix="bench-capacity/v1", **batch)
                capacity.setdefault(variant, []).append(
                    capacity_run(settings, (without_gps if variant == "plain" else with_gps)[:args.events], variant,
                                 args.history))
                _reset_database(args.database_url)
        for backlog in (False, True):
            n = args.backlog if backlog else args.events
            for variant in ("raw", *variants):
                with tempfile.TemporaryDirectory() as folder:
                    tag = uuid.uuid4().hex[:8]
                    settings = load_settings(env={}, data_dir=Path(folder), database_url=args.database_url,
                                             broker_url=args.broker_url, topic_prefix=f"bench-{tag}/v1",
                                             mqtt_client_id=f"bench-ingest-{tag}", **batch)
                    messages = (without_gps if variant == "plain" else with_gps)[:n]
                    with Progress(console=console, transient=True) as progress:
                        if variant == "raw":
                            run = (raw_backlog if backlog else raw_run)(settings, messages, progress)
                        else:
                            run = stored_run(settings, messages, variant, progress, backlog)
                    results.setdefault((backlog, variant), []).append(run)
                    _reset_database(args.database_url)
    database = args.database_url or "SQLite (temporary file)"
    console.print(f"workload {args.workload}: {args.events} lifts live, {args.backlog} from a backlog, "
                  f"median of {args.repeat} rounds, batches of {settings.ingest_batch_size}; "
                  f"database {database}, broker {args.broker_url}; streets: tests/fixtures/geodata/rennes-centre")
    # CPU per event and busy (CPU / wall) say what bounds a live rate: a subscriber busy near 1.0
    # runs out of its core (the GIL) and its own cost sets the rate; well below, the publisher does.
    # "each round": the stored run against the raw run just before it, round by round. The raw
    # rate drifts with the machine's load between rounds; a ratio within one round does not.
    table = Table("run", "events", "median s", "events/s", "stored / raw", "each round", "CPU µs per event", "busy")
    for backlog in (False, True):
        raw = median(results[(backlog, "raw")])
        table.add_row(raw.name, str(raw.events), f"{raw.seconds:.3f}", f"{raw.rate:,.0f}", "", "", *_cpu_cells(raw))
        for variant in variants:
            stored = median(results[(backlog, variant)])
            table.add_row(stored.name, str(stored.events), f"{stored.seconds:.3f}", f"{stored.rate:,.0f}",
                          f"{stored.rate / raw.rate:.2f}", " ".join(f"{r:.2f}" for r in round_ratios(results, backlog,
                                                                                                  variant)),
                          *_cpu_cells(stored))
    console.print(table)
    plain = median(capacity["plain"]) if "plain" in capacity else None
    table = Table("no broker", "events", "median s", "lifts/s", "vs plain", "lifts per CPU second", "vs plain",
                  title=f"store capacity, {args.history:,} lifts of the same trucks already stored" if args.history
                  else "store capacity, empty database")
    for variant in variants:
        run = median(capacity[variant])
        per_cpu = run.events / run.cpu_s
        table.add_row(run.name, str(run.events), f"{run.seconds:.3f}", f"{run.rate:,.0f}",
                      f"{run.rate / plain.rate:.2f}" if plain else "", f"{per_cpu:,.0f}",
                      f"{per_cpu / (plain.events / plain.cpu_s):.2f}" if plain else "")
    console.print(table)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    met = ", ".join(f"{variant} {sum(r >= 0.5 for r in round_ratios(results, False, variant))} of {args.repeat}"
                    for variant in variants)
    console.print(f"target: stored / raw >= 0.50 live; rounds at or above it: {met}; "
                  f"load average at the end {load} on {os.cpu_count()} CPUs")


def round_ratios(results: dict[tuple[bool, str], list[Run]], backlog: bool, variant: str) -> list[float]:
    """Per round, the stored rate against the raw subscriber's rate measured just before it."""
    return [stored.rate / raw.rate for raw, stored in zip(results[(backlog, "raw")], results[(backlog, variant)],
                                                          strict=True)]


def _cpu_cells(run: Run) -> tuple[str, str]:
    """This process's CPU per event and its share of the wall time (the median run's own)."""
    return f"{run.cpu_s / run.events * 1e6:.0f}", f"{run.cpu_s / run.seconds:.2f}"


def _reset_database(url: str | None) -> None:
    """Empty a PostgreSQL database between runs, as empty as the new temporary file a SQLite run
    gets: every table but the migrations' versions (a list of the tables ingest writes went stale
    when it began writing roll-ups, and later rounds upserted into the earlier rounds' rows)."""
    if url is None:
        return
    engine = make_engine(url)
    upgrade_database(engine)  # a raw run may come first on a fresh database: the tables must exist
    with engine.begin() as connection:
        from sqlalchemy import inspect, text

        tables = ", ".join(f'"{name}"' for name in inspect(connection).get_table_names()
                           if not name.startswith("alembic_version"))
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


if __name__ == "__main__":
    main()
