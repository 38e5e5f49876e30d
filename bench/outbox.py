"""What weeks without signal cost the truck's outbox: a lift's write into a full outbox against an
empty one, and the disk space given back once the backlog is delivered.

    .venv/bin/python bench/outbox.py [--mb 450] [--lifts 60] [--passes 4] [--dir /tmp/trivue-outbox-bench]

Two outboxes side by side in one run, the production ``edge.outbox.Outbox``: one empty, one filled
to ``--mb`` with lifts (1 KB) and evidence photos (100 KB random bytes, 3 lifts in 4 with one: what a
truck offline for weeks holds, bounded by ``max_mb``). In each, ``--lifts`` lifts with their photo,
then as many without, alternating between the two outboxes; each figure is the median ms of
``put_lift`` (one fsync'd transaction, the size bound enforced). The ratio full / empty says whether
a lift's cost grows with the backlog (it did: the size was summed over every row at each lift).

Then the full outbox is drained as the uplink drains it (receipts of 20 rows, ``delete_many``) and
the file's size is printed after the drain and after each of ``--passes`` hourly passes
(``expire_photos``, which gives space back), then after a restart. The filled outbox is built once
and kept under ``--dir`` (a copy is used for each run); delete the folder to build it again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.progress import Progress

from edge.outbox import Outbox

LIFT = b'{"sequence": 0, "counts": {"bag": 1}}' * 28  # ~1 KB, a lift event's size
PHOTO_BYTES = 100_000
MB = 1024 * 1024


def clean(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".reserve"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def build_full(path: Path, mb: int) -> None:
    """An outbox holding ``mb`` MiB: lifts and their photos, as weeks offline leave it."""
    clean(path)
    photo = os.urandom(PHOTO_BYTES)  # JPEG bytes do not compress either
    outbox = Outbox(path, max_bytes=mb * 2 * MB)  # the bound above what is written: nothing dropped
    outbox._db.execute("PRAGMA synchronous=OFF")  # building only: the measured writes keep FULL
    n = 0
    with Progress(transient=True) as progress:
        task = progress.add_task(f"filling an outbox to {mb} MiB", total=mb)
        while (size := path.stat().st_size + Path(f"{path}-wal").stat().st_size) < mb * MB:
            outbox.put_lift(f"old-{n}", ("t/lift", LIFT), ("t/evidence", photo) if n % 4 != 3 else None, f"b-{n}@1")
            n += 1
            progress.update(task, completed=min(size / MB, mb))
    outbox.close()


def file_mb(path: Path) -> float:
    return (path.stat().st_size + (Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0)) / MB


def put_ms(outbox: Outbox, tag: str, n: int, photo: bytes | None) -> float:
    start = time.perf_counter()
    outbox.put_lift(f"{tag}-{n}", ("t/lift", LIFT), ("t/evidence", photo) if photo else None, f"{tag}-{n}@1")
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=450, help="MiB the full outbox holds (default 450)")
    parser.add_argument("--lifts", type=int, default=60, help="lifts measured in each outbox, each kind (default 60)")
    parser.add_argument("--passes", type=int, default=4, help="hourly passes after the drain (default 4)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/trivue-outbox-bench"), help="where the outboxes live")
    args = parser.parse_args()
    if args.mb < 1 or args.lifts < 3 or args.passes < 0:
        parser.error("--mb must be >= 1, --lifts >= 3, --passes >= 0")
    args.dir.mkdir(parents=True, exist_ok=True)
    template = args.dir / f"full-{args.mb}.sqlite3"
    if not template.exists():
        build_full(template, args.mb)
    full_path, empty_path = args.dir / "full.sqlite3", args.dir / "empty.sqlite3"
    for path in (full_path, empty_path):
        clean(path)
    shutil.copyfile(template, full_path)
    full, empty = Outbox(full_path, max_bytes=args.mb * 2 * MB), Outbox(empty_path, max_bytes=args.mb * 2 * MB)
    photo = os.urandom(PHOTO_BYTES)
    print(f"full outbox: {file_mb(full_path):.0f} MiB, {full.depth()} rows waiting; empty outbox: {empty.depth()} rows")
    print(f"\n{'put_lift, median ms':<24} {'empty':>8} {'full':>8} {'full/empty':>11}")
    for label, kind in (("lift + 100 KB photo", photo), ("lift alone", None)):
        times: dict[str, list[float]] = {"empty": [], "full": []}
        for n in range(args.lifts):  # alternating: the machine's load falls on both alike
            times["empty"].append(put_ms(empty, f"e-{label}", n, kind))
            times["full"].append(put_ms(full, f"f-{label}", n, kind))
        e, f = statistics.median(times["empty"]), statistics.median(times["full"])
        print(f"{label:<24} {e:>8.2f} {f:>8.2f} {f / e:>10.2f}x")
    empty.close()
    start = time.perf_counter()
    slowest = 0.0
    while rows := full.oldest(limit=20):
        began = time.perf_counter()
        full.delete_many([row.seq for row in rows])
        slowest = max(slowest, time.perf_counter() - began)
    print(f"\ndrained in receipts of 20 rows: {time.perf_counter() - start:.1f} s (slowest receipt "
          f"{slowest * 1000:.0f} ms); file {file_mb(full_path):.1f} MiB")
    for hour in range(1, args.passes + 1):
        began = time.perf_counter()
        full.expire_photos(7 * 86_400)
        print(f"after hourly pass {hour} ({time.perf_counter() - began:.2f} s): file {file_mb(full_path):.1f} MiB")
    full.close()
    began = time.perf_counter()
    Outbox(full_path).close()
    print(f"after a restart ({time.perf_counter() - began:.2f} s): file {file_mb(full_path):.1f} MiB")


if __name__ == "__main__":
    main()
