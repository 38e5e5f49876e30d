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
