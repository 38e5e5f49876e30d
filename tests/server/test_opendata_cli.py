"""``trivue opendata export --out`` that cannot be a folder: one line naming it, before the database is read."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert err.startswith(f"trivue opendata: error: until {until}: ") and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("args", "error"), [
    (["--months-k", "10"], "months_k: only with the period year, got 10 with month"),
    (["--period", "year", "--months-k", "4"], "months_k: cells under 5 lifts are never published, got 4")])
def test_months_k_only_for_years_and_never_under_five(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], args: list[str],
                                                      error: str) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    assert main(["opendata", "export", "--out", str(tmp_path / "out"), *args]) == 2
    assert capsys.readouterr().err.strip() == f"trivue opendata: error: {error}"
