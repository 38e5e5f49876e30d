"""Long fault scenarios on the real chain: truck outbox -> Mosquitto -> server ingest -> database.

    make chaos                      # every scenario, default sizes
    .venv/bin/python bench/chaos.py [--lifts 3000] [--only offline,server-kill,...] [--json FILE]

Scenarios (each reports events sent, stored, lost, duplicates; lost and duplicates must be 0):
  offline       two trucks off the network for a whole round (--lifts each, a photo every 10th),
                then back: everything delivered once, in sequence order
  broker        Mosquitto restarted (SIGTERM) three times while a truck streams lifts
  broker-kill   Mosquitto killed (SIGKILL) once mid-stream: it loses QoS 1 messages it had
                acknowledged but not yet saved or forwarded; the truck keeps them until the
                server's receipt and sends them again after uplink.receipt_timeout_s (the
                production 120 s: this scenario takes two minutes longer than the others)
  server-kill   ``trivue server`` killed with SIGKILL three times mid-ingest, restarted each time
  edge-kill     the outbox writer killed with SIGKILL ten times; PRAGMA integrity_check each time
  postgres      a private PostgreSQL (initdb + pg_ctl on a spare port, never the shared one)
                restarted twice under ingest load; skipped when no PostgreSQL binaries are found

Uses Mosquitto on deploy/mosquitto/mosquitto.conf (the shipped config) on spare ports. The shared
broker on 1883 and the shared PostgreSQL on 5432 are never touched.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from tests.reliability.chain import (
    ChildServer,
    InProcessServer,
    Tally,
    Truck,
    server_settings,
    stored_count,
    tally,
    wait_until,
)
from tests.reliability.test_faults import WRITER
from tests.security.secured_mosquitto import SecuredMosquitto, free_port, tools_missing

console = Console()
Scenario = Callable[[Path, int], Tally]


@contextmanager
def broker_in(workdir: Path) -> Iterator[SecuredMosquitto]:
    (workdir / "mosquitto").mkdir()
    broker = SecuredMosquitto(workdir / "mosquitto", trucks=("truck-a", "truck-b"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def drain(server_engine: object, trucks: list[Truck], timeout: float) -> None:
    total = sum(len(t.sent) for t in trucks)
    wait_until(lambda: stored_count(server_engine) >= total and all(t.outbox.depth() == 0 for t in trucks),
               timeout, f"{total} lifts stored")


def stream(truck: Truck, lifts: int, per_s: float = 300) -> threading.Thread:
    """Commit lifts at about ``per_s`` a second in the background, as a busy round would."""

    def run() -> None:
        for _ in range(0, lifts, 10):
            truck.queue(10, photo_every=10)
            time.sleep(10 / per_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def offline(workdir: Path, lifts: int) -> Tally:
    with broker_in(workdir) as broker:
        server = InProcessServer(server_settings(workdir, broker))
        server.start()
        trucks = [Truck.make(workdir, broker, t) for t in ("truck-a", "truck-b")]
        try:
            for truck in trucks:
                truck.queue(lifts, photo_every=10)
            started = time.monotonic()
            for truck in trucks:
                truck.start()
            drain(server.engine, trucks, timeout=600)
            console.print(f"  offline: {2 * lifts} lifts drained in {time.monotonic() - started:.1f} s")
            return tally(server.engine, trucks)
        finally:
            for truck in trucks:
                truck.close()
            server.stop()


def broker_restarts(workdir: Path, lifts: int, sig: int = signal.SIGTERM, times: int = 3) -> Tally:
    with broker_in(workdir) as broker:
        server = InProcessServer(server_settings(workdir, broker))
        server.start()
        truck = Truck.make(workdir, broker, "truck-a")
        try:
            truck.start()
            producer = stream(truck, lifts)
            for n in range(times):
                wait_until(lambda n=n: stored_count(server.engine) >= (n + 1) * lifts // (times + 1), 300,
                           "ingest under way")
                broker.stop(sig)
                time.sleep(2)
                broker.start()
            producer.join(600)
            started = time.monotonic()
            try:
                # After a SIGKILL the lost rows come back only after receipt_timeout_s (120 s).
                drain(server.engine, [truck], timeout=120 + 2 * truck.settings.uplink.receipt_timeout_s)
            except AssertionError as error:  # report what was lost, do not hide it behind an exception
                console.print(f"  [yellow]{error}[/yellow]")
            console.print(f"  drained {time.monotonic() - started:.0f} s after the stream ended")
            return tally(server.engine, [truck])
        finally:
            truck.close()
            server.stop()


def server_kills(workdir: Path, lifts: int, times: int = 3) -> Tally:
    from server.db import make_engine

    with broker_in(workdir) as broker:
        settings = server_settings(workdir, broker, ingest_batch_size=100)
        child = ChildServer(settings, workdir / "server.log")
        truck = Truck.make(workdir, broker, "truck-a")
        truck.queue(lifts, photo_every=10)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url)
        try:
            child.start()
            wait_until(lambda: "connected to the broker" in child.log_path.read_text(errors="replace"), 120,
                       "server connected")
            truck.start()
            for n in range(times):
                wait_until(lambda n=n: _count(engine) >= (n + 1) * lifts // (times + 2), 300, "ingest under way")
                child.kill()
                console.print(f"  server SIGKILL #{n + 1} at {_count(engine)} of {lifts} lifts stored")
                time.sleep(1)
                child.start()
            wait_until(lambda: _count(engine) >= lifts, 600, "every lift stored")
            time.sleep(1)
            return tally(engine, [truck])
        finally:
            truck.close()
            child.stop()
            engine.dispose()


def _count(engine: object) -> int:
    try:
        return stored_count(engine)
    except Exception:  # tables not created yet by the child server
        return 0


def edge_kills(workdir: Path, lifts: int, times: int = 10) -> Tally:
    import sqlite3

    path = workdir / "outbox.sqlite3"
    for n in range(times):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                 cwd=Path(__file__).resolve().parent.parent)
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(0.05 + 0.07 * n)
        child.kill()
        child.wait(10)
        with sqlite3.connect(path) as db:
            if db.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise AssertionError(f"outbox corrupt after kill #{n + 1}")
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT event_id FROM messages WHERE kind = 'lift'")]
    sequences = sorted(int(i.removeprefix("id-")) for i in ids)
    gaps = sequences[-1] + 1 - len(sequences) if sequences else 0
    console.print(f"  edge: {times} kills, integrity ok each time, {len(ids)} lifts, {gaps} sequence gaps "
                  f"(a number taken just before a kill; at most one per kill)")
    # Committed lifts are all there exactly once: "sent" is what the writer committed.
    return Tally(len(ids), len(set(ids)), 0 if gaps <= times else gaps, len(ids) - len(set(ids)), len(set(ids)),
                 0, 0, 0)


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres account when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def private_postgres(workdir: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A throwaway PostgreSQL cluster on a spare port; yields its URL and a restart function."""
    bindir = postgres_bin()
    assert bindir is not None
    data = Path(tempfile.mkdtemp(prefix="trivue-chaos-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
              "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1"]
    subprocess.run(as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]),
                   check=True, capture_output=True)
    subprocess.run(as_postgres([*pg_ctl, "start"]), check=True, capture_output=True)
    subprocess.run(as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                "trivue"]), check=True, capture_output=True)

    def restart() -> None:
        subprocess.run(as_postgres([*pg_ctl, "-m", "fast", "stop"]), check=True, capture_output=True)
        time.sleep(2)  # ingest meets a database that is away, not only a reconnect
        subprocess.run(as_postgres([*pg_ctl, "start"]), check=True, capture_output=True)

    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/trivue", restart
    finally:
        subprocess.run(as_postgres([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def postgres_restarts(workdir: Path, lifts: int, times: int = 2) -> Tally:
    with broker_in(workdir) as broker, private_postgres(workdir) as (url, restart):
        server = InProcessServer(server_settings(workdir, broker, database_url=url))
        server.start()
        truck = Truck.make(workdir, broker, "truck-a")
        try:
            truck.start()
            producer = stream(truck, lifts)
            for n in range(times):
                wait_until(lambda n=n: _count(server.engine) >= (n + 1) * lifts // (times + 1), 300,
                           "ingest under way")
                restart()
                console.print(f"  PostgreSQL restarted #{n + 1} at {_count(server.engine)} lifts stored")
            producer.join(600)
            drain(server.engine, [truck], timeout=300)
            return tally(server.engine, [truck])
        finally:
            truck.close()
            server.stop()


SCENARIOS: dict[str, Scenario] = {
    "offline": offline,
    "broker": broker_restarts,
    "broker-kill": lambda w, n: broker_restarts(w, n, signal.SIGKILL, times=1),
    "server-kill": server_kills,
    "edge-kill": edge_kills,
    "postgres": postgres_restarts,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifts", type=int, default=3000, help="lifts per truck and scenario")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in only if name not in SCENARIOS]:  # before minutes of the others
        parser.error(f"--only: unknown {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    # The scenarios provoke ingest and uplink errors on purpose; their logs would drown the figures.
    logging.basicConfig(level=logging.CRITICAL)
    if tools_missing():
        console.print(f"[red]cannot run: {tools_missing()}[/red]")
        return 2
    socket.setdefaulttimeout(30)
    results: dict[str, Tally | str] = {}
    for name in only:
        if name == "postgres" and postgres_bin() is None:
            results[name] = "skipped: no PostgreSQL binaries in /usr/lib/postgresql/*/bin"
            continue
        console.rule(name)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"trivue-chaos-{name}-") as workdir:
            try:
                results[name] = SCENARIOS[name](Path(workdir), args.lifts)
            except Exception as error:  # one scenario failing must not hide the others' figures
                logging.exception("scenario %s failed", name)
                results[name] = f"failed: {error}"
        console.print(f"  {name}: {time.monotonic() - started:.0f} s")
    return report(results, args.json)


def report(results: dict[str, Tally | str], json_path: Path | None) -> int:
    table = Table(title="Trivue chaos: nothing lost, nothing counted twice")
    for column in ("scenario", "sent", "stored", "lost", "duplicates", "aggregates", "photos", "out of order"):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    ok = True
    for name, result in results.items():
        if isinstance(result, str):
            table.add_row(name, result, "", "", "", "", "", "")
            ok &= result.startswith("skipped")
            continue
        # broker-kill used to be informational (a broker crash lost acknowledged messages); with
        # end-to-end receipts it must hold like every other scenario.
        ok &= result.lost == 0 and result.duplicates == 0 and result.aggregate_lifts == result.stored
        table.add_row(name, *(str(v) for v in (result.sent, result.stored, result.lost, result.duplicates,
                                              result.aggregate_lifts)),
                      f"{result.photos_stored}/{result.photos_sent}", str(result.out_of_order))
    console.print(table)
    if json_path:
        json_path.write_text(json.dumps({k: v if isinstance(v, str) else v.__dict__ for k, v in results.items()},
                                        indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
