"""Writing the open data package to a folder so that it holds the old package or the new one, never a mix."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from server.opendata.export import (
    CSV_NAME,
    GEOJSON_NAME,
    PACKAGE_NAME,
    OpenDataQuery,
    Publication,
    datapackage,
    to_csv,
    to_geojson,
)

STAGING_PREFIX = ".trivue-export-"
PACKAGE_FILES = (CSV_NAME, GEOJSON_NAME, PACKAGE_NAME)  # moved in this order: the description last


def write_package(pub: Publication, q: OpenDataQuery, out: Path, created: datetime) -> None:
    """``streets.csv``, ``streets.geojson`` and ``datapackage.json`` of ``pub`` in ``out`` (created if needed).

    ``out`` holds the package it held before or the new one, never a mix (a new CSV beside the
    previous export's ``datapackage.json`` looks published): the three files are written and
    flushed to disk in a staging folder inside ``out`` (the same filesystem, where a rename is
    atomic, even when ``out`` is a mount point), then renamed over the old ones, which are kept as
    hard links until all three are in place and put back if a rename fails. An ``OSError`` (disk
    full, permissions) leaves the previous package as it was and the staging folder removed.
    """
    files = {CSV_NAME: to_csv(pub), GEOJSON_NAME: to_geojson(pub),
             PACKAGE_NAME: json.dumps(datapackage(q, created), ensure_ascii=False, indent=2) + "\n"}
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        for name in PACKAGE_FILES:
            with (staging / name).open("w", encoding="utf-8", newline="") as file:
                file.write(files[name])
                file.flush()
                os.fsync(file.fileno())  # on disk before the rename makes it the published file
        _move_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(staging: Path, out: Path) -> None:
    previous = staging / "previous"
    previous.mkdir()
    for name in PACKAGE_FILES:  # keep the old files reachable: nothing is replaced if this fails
        if (out / name).exists():
            try:
                os.link(out / name, previous / name)
            except OSError:  # a filesystem without hard links
                shutil.copy2(out / name, previous / name)
    moved: list[str] = []
    try:
        for name in PACKAGE_FILES:
            os.replace(staging / name, out / name)
            moved.append(name)
    except OSError:
        for name in reversed(moved):  # back to the previous package, file by file
            if (previous / name).exists():
                os.replace(previous / name, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        raise
    descriptor = os.open(out, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the renames themselves survive a power cut
    finally:
        os.close(descriptor)
