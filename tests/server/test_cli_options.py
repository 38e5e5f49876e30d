"""Options of the server's commands refused before any database is opened: one line naming the
option and the value as typed, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivue.cli import main


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRIVUE_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRIVUE_TIMEZONE", raising=False)


def test_replay_since_after_until_names_both_days_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters", "replay", "--since", "2026-12-05", "--until", "2026-12-01"]) == 2
    err = capsys.readouterr().err
    # Before: "--since 2026-12-05 00:00 is not before until 2026-12-02 00:00", a day nobody typed.
    assert "--since 2026-12-05" in err and "--until 2026-12-01" in err and "2026-12-02" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_replay_of_one_day_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters", "replay", "--since", "2026-12-01", "--until", "2026-12-01"]) == 0
    assert "0 dead letters replayed" in capsys.readouterr().err


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe"])  # "Europe": a folder of the zone database
def test_rebuild_with_an_unknown_zone_says_so(capsys: pytest.CaptureFixture[str], zone: str) -> None:
    assert main(["aggregates", "rebuild", "--timezone", zone]) == 2
    err = capsys.readouterr().err
    # Before: "set timezone: Mars/Olympus in the settings first", advice the server then refuses;
    # "Europe" was a traceback (IsADirectoryError).
    assert "--timezone" in err and f"'{zone}'" in err and "unknown time zone" in err
    assert "in the settings" not in err and len(err.strip().splitlines()) == 1


def test_rebuild_with_another_valid_zone_asks_to_set_it_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["aggregates", "rebuild", "--timezone", "Indian/Reunion"]) == 2
    assert "set timezone: Indian/Reunion in the settings" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["99999", "0"])
def test_a_bad_port_is_blamed_on_the_option_not_the_settings_file(
    tmp_path: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("timezone: Europe/Paris\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        main(["server", "--config", str(config), "--port", port])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    # Before: "server.yaml: port: Input should be less than or equal to 65535", a file that has no port.
    assert "argument --port" in err and f"got {port}" in err and "server.yaml" not in err


def test_a_bad_database_url_option_is_blamed_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("timezone: Europe/Paris\n", encoding="utf-8")
    url = "postgresql://trivue:changeme@127.0.0.1/nodb"
    assert main(["streets", "list", "--config", str(config), "--database-url", url]) == 2
    err = capsys.readouterr().err
    # Before: "server.yaml: database_url: ...", a file that has no database_url.
    assert "command line: database_url: " in err and "placeholder password" in err and "server.yaml" not in err
