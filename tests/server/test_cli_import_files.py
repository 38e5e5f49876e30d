"""``trivue streets/addresses/bins import FILE`` with a mistyped FILE: one line naming it, and no
database made or migrated (a fresh install's first mistake left ./trivue-data/trivue.db behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivue.cli import main


@pytest.mark.parametrize("command", [["streets", "import"], ["addresses", "import"], ["bins", "import"]])
@pytest.mark.parametrize(("name", "message"), [("absent.csv", "no such file"), ("folder", "not a file")])
def test_a_bad_input_file_stops_before_the_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    name: str,
    message: str,
) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRIVUE_DATABASE_URL", raising=False)
    (tmp_path / "folder").mkdir()
    assert main([*command, str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"trivue {command[0]}: error: {tmp_path / name}: {message}"], err
    assert not (tmp_path / "data").exists()
