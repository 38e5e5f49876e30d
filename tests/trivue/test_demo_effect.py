"""``trivue demo-effect``: one command simulates a campaign with a known effect, stores it, measures
it with the server's report and writes the plot; bad options get one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trivue.cli import main


def test_demo_effect_measures_the_simulated_drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_LANG", "fr")
    out = tmp_path / "effet"
    assert main(["demo-effect", "--out", str(out), "--drop", "0.4", "--seed", "21"]) == 0
    printed = capsys.readouterr()
    assert "Effet simulé (la vérité) : -" in printed.out
    assert "Baisse de la contamination attribuable à la campagne" in printed.out
    assert "L'intervalle contient l'effet simulé." in printed.out
    assert "INFO" not in printed.err  # no migration chatter on a manager's terminal
    report = json.loads((out / "effet.json").read_text(encoding="utf-8"))
    assert report["status"] == "decrease" and report["balance"]["ok"]
    svg = (out / "effet.svg").read_text(encoding="utf-8")
    assert svg.count("<polyline") == 2 and "rues ciblées" in svg and "envoi" in svg
    assert (out / "effet.csv").read_text(encoding="utf-8").startswith("group,unit,")
    assert (out / "trivue.db").is_file()  # the campaign, to open on the Rappels page

    assert main(["demo-effect", "--out", str(out)]) == 2  # the previous database is not silently replaced
    assert "--replace" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--drop", "1.5"], ["--delay-days", "-1"], ["--weeks", "0"]])
def test_demo_effect_refuses_bad_options_in_one_line(args: list[str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-effect", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert args[0] in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "trivue.db").exists()


def test_no_effect_simulated_is_measured_as_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TRIVUE_LANG", raising=False)  # English, as every command
    assert main(["demo-effect", "--out", str(tmp_path), "--drop", "0", "--seed", "5", "--weeks", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Simulated effect (the truth): +0.0 points" in printed and "No effect shown" in printed
