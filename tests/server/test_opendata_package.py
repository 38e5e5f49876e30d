"""``write_package`` replaces a published package whole or not at all: a failure between its files
(disk full on the GeoJSON, a rename refused) leaves the previous package as it was, never a new CSV
beside the previous ``datapackage.json``, and the command says what happened in one line."""

from __future__ import annotations

import errno
import io
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from server.db import make_engine
from server.ingest.aggregates import add_to_aggregates
from server.migrate import upgrade_database
from server.opendata import package
from server.opendata.export import GEOJSON_NAME, PACKAGE_NAME, OpenDataQuery, Publication, PublishedStreet
from server.opendata.package import PACKAGE_FILES, write_package
from server.streets.models import Street
from tests.server.opendata_homes import give_addresses
from trivue.cli import main

QUERY = OpenDataQuery("month", 10, date(2026, 10, 1), date(2026, 10, 31))
CREATED = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


GEOMETRY = '{"type":"LineString","coordinates":[[-1.68,48.11],[-1.67,48.11]]}'


def _publication(lifts: int, name: str) -> Publication:
    cell = ("2026-10", "recyclables", lifts, 2, ("sac_ferme",))
    return Publication([PublishedStreet(7, name, "Rennes", "35238", GEOMETRY, [cell])], 0)


def _files(out: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(out.iterdir())}


def _disk_full_on(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening ``name`` for writing fails as on a full disk, wherever the writer puts it."""
    real_open = io.open

    def full(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if Path(file).name == name and ("w" in mode or "a" in mode):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", full)


def test_a_failure_between_files_leaves_the_previous_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    write_package(_publication(12, "Rue de la Paix"), QUERY, out, CREATED)
    before = _files(out)
    assert set(before) == set(PACKAGE_FILES)

    _disk_full_on(GEOJSON_NAME, monkeypatch)  # the CSV is written, the GeoJSON is not
    with pytest.raises(OSError, match="No space left on device"):
        write_package(_publication(40, "Rue Neuve"), QUERY, out, datetime(2026, 12, 5, tzinfo=UTC))
    assert _files(out) == before  # nothing new beside the old description, no staging folder left
    assert [p.name for p in out.iterdir() if p.is_dir()] == []

    monkeypatch.undo()
    write_package(_publication(40, "Rue Neuve"), QUERY, out, CREATED)
    after = _files(out)
    assert "Rue Neuve" in after["streets.csv"] and "Rue Neuve" in after[GEOJSON_NAME]
    assert "Rue de la Paix" not in "".join(after.values())


def test_a_refused_rename_puts_the_previous_files_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    write_package(_publication(12, "Rue de la Paix"), QUERY, out, CREATED)
    before = _files(out)
    real_replace = os.replace

    def refuse_the_description(source: Any, target: Any) -> None:
        if Path(target) == out / PACKAGE_NAME:  # the data files are already in place
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        real_replace(source, target)

    monkeypatch.setattr(package.os, "replace", refuse_the_description)
    with pytest.raises(OSError, match="Permission denied"):
        write_package(_publication(40, "Rue Neuve"), QUERY, out, CREATED)
    assert _files(out) == before
    assert [p.name for p in out.iterdir() if p.is_dir()] == []


def test_a_first_export_that_fails_leaves_no_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    _disk_full_on(PACKAGE_NAME, monkeypatch)
    with pytest.raises(OSError):
        write_package(_publication(12, "Rue de la Paix"), QUERY, out, CREATED)
    assert list(out.iterdir()) == []  # no data files without their description


def test_the_command_says_what_failed_and_keeps_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        with Session(engine) as session:
            session.execute(insert(Street), [{"id": 7, "name": "Rue de la Paix", "commune": "Rennes",
                                              "name_key": "rue de la paix", "geometry": GEOMETRY, "length_m": 80.0}])
            give_addresses(session, 7, 5)  # households enough to publish
            add_to_aggregates(session, [{"street_id": 7, "day": date(2026, 10, 2 + i), "stream": "recyclables",
                                         "overruled_at": None, "contaminated": False, "has_alert": False, "score": 0.0,
                                         "errors": [], "lat": 48.1, "match_confidence": 0.9, "street_confidence": None}
                                        for i in range(12)])
            session.commit()
    finally:
        engine.dispose()
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", url)
    out = tmp_path / "export"
    args = ["opendata", "export", "--out", str(out), "--until", "2026-10-31"]
    assert main(args) == 0
    before = _files(out)
    capsys.readouterr()

    _disk_full_on(GEOJSON_NAME, monkeypatch)
    assert main([*args, "--k", "12"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trivue opendata: error: --out {out}: the package could not be written ([Errno 28] "
                          "No space left on device"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _files(out) == before
