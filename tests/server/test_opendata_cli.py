"""``trivue opendata export --out`` that cannot be a folder: one line naming it, before the database is read."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.opendata.export import default_query
from trivue.cli import main


@pytest.mark.parametrize(("out", "reason"), [("a-file", "File exists"), ("a-file/sub", "Not a directory")])
def test_export_to_a_path_that_cannot_be_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], out: str, reason: str) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    database = tmp_path / "never.db"
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{database}")
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    assert main(["opendata", "export", "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert f"trivue opendata: error: --out {tmp_path / out}: cannot be a folder: {reason}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not database.exists()  # refused before the database was opened (or created)


@pytest.mark.parametrize(("period", "until"),
                         [("month", "9999-12-31"), ("year", "9999-12-31"), ("month", "9999-12-15")])
def test_export_until_the_last_day_python_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], period: str, until: str) -> None:
    """December 9999 has no next month to count back from: one line, not an OverflowError's traceback."""
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    assert main(["opendata", "export", "--out", str(tmp_path / "out"), "--period", period, "--until", until]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trivue opendata: error: --until {until}: ") and len(err.strip().splitlines()) == 1, err


# The options as typed: it said "k: ...", "months_k: ..." and "until ... is before since ...", fields
# the user never typed.
@pytest.mark.parametrize(("args", "error"), [
    (["--months-k", "10"], "--months-k: only with --period year, got 10 with --period month"),
    (["--period", "year", "--months-k", "4"], "--months-k: cells under 5 lifts are never published, got 4"),
    (["--k", "4"], "--k: cells under 5 lifts are never published, got 4"),
    (["--since", "2025-11-01", "--until", "2025-10-31"], "--until 2025-10-31 is before --since 2025-11-01"),
    (["--since", "2025-11-02"], "--since 2025-11-02: the open data publishes whole months only, start on 2025-11-01"),
])
def test_refused_options_are_named_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], args: list[str],
                                                      error: str) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    assert main(["opendata", "export", "--out", str(tmp_path / "out"), *args]) == 2
    assert capsys.readouterr().err.strip() == f"trivue opendata: error: {error}"


@pytest.mark.parametrize(("period", "since", "today", "error"), [
    ("year", date(2026, 1, 1), date(2026, 12, 5),
     "since 2026-01-01: the year is still being collected (today is 2026-12-05); the last complete one ends on "
     "2025-12-31"),
    ("month", date(2026, 12, 1), date(2026, 12, 5),
     "since 2026-12-01: the month is still being collected (today is 2026-12-05); the last complete one ends on "
     "2026-11-30")])
def test_a_period_still_being_collected_is_named_as_such(period: str, since: date, today: date, error: str) -> None:
    """``--since`` on the running period, ``--until`` left to its default: not "until 2025-12-31 is
    before since 2026-01-01", a range the user never typed, but why nothing can be published yet."""
    with pytest.raises(ValueError) as refused:
        default_query(today, period, since=since)
    assert str(refused.value) == error


def test_the_command_names_the_running_year(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    this_year = datetime.now(ZoneInfo("Europe/Paris")).date().replace(month=1, day=1)  # the default timezone
    assert main(["opendata", "export", "--out", str(tmp_path / "out"), "--period", "year",
                 "--since", this_year.isoformat()]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trivue opendata: error: --since {this_year}: the year is still being collected"), err
