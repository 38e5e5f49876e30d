"""``trivue server`` with a bad setting: one line naming the field and the value, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from base.errors import CliError
from server.cli import app_or_cli_error
from server.config import load_settings


def trivue_server(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIVUE_")}
    environ.update({"TRIVUE_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run([sys.executable, "-m", "trivue", "server", "--no-ingest"], env=environ,
                          capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # Start-up log lines (the database migration) may come first; the failure is one line, the last.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], lines
    return lines[-1]


def test_a_bad_reminders_rules_file_found_by_create_app_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("household:\n  window_days: abc\n", encoding="utf-8")
    line = _one_line(trivue_server(tmp_path, TRIVUE_REMINDERS_RULES=str(rules), TRIVUE_PORT="18999"))
    assert line.startswith("trivue server: error: ") and "household.window_days" in line and "'abc'" in line


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    line = _one_line(trivue_server(tmp_path, TRIVUE_PORT="huit-mille"))
    assert line.startswith("trivue server: error: environment (TRIVUE_PORT): port:") and "'huit-mille'" in line


def test_a_validation_error_from_create_app_names_the_field(tmp_path: Path) -> None:
    class Limits(BaseModel):
        max_payload_bytes: int

    def create_app(_settings: object) -> object:
        Limits.model_validate({"max_payload_bytes": "lots"})
        raise AssertionError("unreachable")

    with pytest.raises(CliError) as raised:
        app_or_cli_error(create_app, load_settings(env={}, data_dir=tmp_path))
    assert "max_payload_bytes" in str(raised.value) and "'lots'" in str(raised.value)
    assert not isinstance(raised.value, ValidationError)


def test_a_missing_sorting_rules_file_stops_the_server_naming_the_setting(tmp_path: Path) -> None:
    line = _one_line(trivue_server(tmp_path, TRIVUE_SORTING_RULES=str(tmp_path / "regles.yaml"),
                                   TRIVUE_PORT="18998"))
    assert line == f"trivue server: error: sorting_rules: {tmp_path / 'regles.yaml'}: rules file not found", line


@pytest.mark.parametrize("argv", [("streets", "stats"), ("users", "list")])
def test_a_command_makes_only_its_database_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    """A command run with the database elsewhere left an empty ``trivue-data/evidence`` in the
    folder the operator stood in (the server's folders, made by every command)."""
    from trivue.cli import main

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("TRIVUE_DATA_DIR", raising=False)
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'trivue.db'}")
    assert main(list(argv)) == 0, capsys.readouterr().err
    assert list(here.iterdir()) == []
    assert (tmp_path / "db" / "trivue.db").is_file()


def test_a_command_on_the_default_database_makes_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from trivue.cli import main

    monkeypatch.delenv("TRIVUE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    assert main(["streets", "stats"]) == 0, capsys.readouterr().err
    assert (tmp_path / "data" / "trivue.db").is_file()
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "blocked"))
    assert main(["users", "list"]) == 2
    err = capsys.readouterr().err
    assert "data_dir" in err and "blocked" in err and "cannot be used as a folder" in err, err


def test_a_database_password_holding_an_at_sign_is_refused_unprinted(tmp_path: Path) -> None:
    # A generated password pasted into server.env as is: SQLAlchemy split the URL at its first "@" and
    # the error line printed the password's tail as the host ("***@etPW@127.0.0.1"), and the driver's
    # "failed to resolve host 'etPW@127.0.0.1'" printed it again.
    result = trivue_server(tmp_path, TRIVUE_DATABASE_URL="postgresql://trivue:S3cr@etPW@127.0.0.1:1/trivue")
    line = _one_line(result)
    assert line.startswith("trivue server: error: environment (TRIVUE_DATABASE_URL): database_url: "), line
    assert "%40" in line, line
    assert "etPW" not in result.stderr and "S3cr" not in result.stderr, result.stderr


def test_a_postgres_scheme_names_the_variable_and_the_spelling_wanted(tmp_path: Path) -> None:
    # libpq and psql take postgres://; SQLAlchemy does not. The line named neither the variable nor
    # the spelling to write.
    result = trivue_server(tmp_path, TRIVUE_DATABASE_URL="postgres://trivue:S3cretPW@127.0.0.1:1/trivue")
    line = _one_line(result)
    assert line.startswith("trivue server: error: environment (TRIVUE_DATABASE_URL): database_url: "), line
    assert "write postgresql://" in line and "S3cretPW" not in result.stderr, line


def test_a_user_name_holding_an_at_sign_keeps_the_password_masked(tmp_path: Path) -> None:
    # Some hosted PostgreSQL services name users "trivue@server" (SQLAlchemy reads the user up to the
    # ":"); the masking allowed no "@" in the user and printed the password whole.
    result = trivue_server(tmp_path, TRIVUE_DATABASE_URL="postgresql://trivue@pg-orleans:S3cretPW@127.0.0.1:1/trivue")
    line = _one_line(result)
    assert "cannot be used" in line and "postgresql://trivue@pg-orleans:***@127.0.0.1:1/trivue" in line, line
    assert "S3cretPW" not in result.stderr, result.stderr
