"""The server over weeks of lifts: its memory, file descriptors, threads, database and photos, round after round.

    .venv/bin/python bench/soak.py [--rounds 4] [--days 12] [--trucks 20] [--speed 6000]
                                   [--broker mqtt://127.0.0.1:1883] [--dir /tmp/trivue-soak] [--env NAME=VALUE]

Starts the real ``trivue server`` (API, MQTT ingest, retention) on a fresh SQLite database under
``--dir`` with the committed Rennes extract and a random topic prefix, then runs ``trivue simulate``
``--rounds`` times against it through the broker: each round ``--days`` days of ``--trucks``
trucks, 5 % of lifts delivered twice, 2 % malformed messages (dead letters), an evidence photo on
each lift with a closed bag. ``--speed`` (simulated seconds per second) keeps the publishers below
what the server stores, so that the broker queues nothing (Mosquitto's default
``max_queued_messages`` of 1,000 drops the rest of a faster flood; docs/api.md). After each round,
once the server has stored what was sent, one row: the server's RSS and anonymous RSS, open file
descriptors, threads, lifts and dead letters stored, database and photo folder sizes. A leak
grows by the same amount every round; an allocator warming up grows less each round.

``--env MALLOC_ARENA_MAX=2`` (repeatable) starts the server with that environment, for comparison.
The folder is emptied first; the server is stopped at the end, and its broker session with it
(``mqtt_session_expiry_s: 0``: nothing is left queued on the broker for a prefix no one reads).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIVUE = [sys.executable, "-m", "trivue"]
STREETS = ROOT / "trivue" / "sample" / "rennes-centre.geojson"
PHOTOS = ROOT / "trivue" / "sample" / "images" / "contaminated"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (kB) and Threads of ``pid``, with its open file descriptors."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "Threads"):
            fields[name] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


def counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return (conn.execute("SELECT COUNT(*) FROM lifts").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])


def megabytes(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def settled(db: Path, timeout_s: float = 600) -> tuple[int, int]:
    """The counts once they stop moving for 10 s (the ingest has written what the broker handed it)."""
    last, since, deadline = counts(db), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(2)
        now = counts(db)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 10:
            break
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--trucks", type=int, default=20)
    parser.add_argument("--speed", type=float, default=6000)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/trivue-soak"))
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    config = args.dir / "server.yaml"
    config.write_text(f"data_dir: {args.dir / 'data'}\ntopic_prefix: {prefix}/v1\nmqtt_client_id: {prefix}\n"
                      f"broker_url: {args.broker}\nport: {free_port()}\nmqtt_session_expiry_s: 0\n", encoding="utf-8")
    run = {"cwd": ROOT, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([*TRIVUE, "streets", "import", "--config", str(config), "--commune", "Rennes", str(STREETS)], **run)
    env = os.environ | dict(pair.split("=", 1) for pair in args.env)
    with open(args.dir / "server.log", "wb") as log:
        server = subprocess.Popen([*TRIVUE, "server", "--config", str(config)], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    db, photos = args.dir / "data" / "trivue.db", args.dir / "data" / "evidence"
    try:
        time.sleep(15)  # started, subscribed, the first retention pass done
        print(f"server pid {server.pid}, {args.trucks} trucks x {args.days} days a round, "
              f"environment {' '.join(args.env) or 'as is'}")
        print(f"{'round':>5} {'sent':>8} {'lifts':>8} {'dead':>6} {'rss MB':>7} {'anon MB':>7} {'fds':>4} "
              f"{'threads':>7} {'db MB':>6} {'photos MB':>9}")

        def row(label: str, sent: int) -> None:
            lifts, dead = settled(db)
            s = status(server.pid)
            print(f"{label:>5} {sent:>8} {lifts:>8} {dead:>6} {s['VmRSS'] / 1024:>7.0f} {s['RssAnon'] / 1024:>7.0f} "
                  f"{s['fds']:>4} {s['Threads']:>7} {megabytes(db):>6.0f} {megabytes(photos):>9.0f}", flush=True)

        row("0", 0)
        sent = 0
        for n in range(1, args.rounds + 1):
            done = subprocess.run(
                [*TRIVUE, "simulate", "--config", str(config), "--trucks", str(args.trucks), "--days", str(args.days),
                 "--speed", str(args.speed), "--duplicates", "0.05", "--malformed", "0.02", "--seed", str(n),
                 "--evidence-photos", str(PHOTOS), "--truth", str(args.dir / f"truth-{n}")],
                cwd=ROOT, check=True, capture_output=True, text=True)
            sent += int(done.stdout.strip().splitlines()[-1].split()[0])  # "N lifts (...) by ..."
            row(str(n), sent)
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
