"""``trivue simulate`` judges by the server's sorting rules (``sorting_rules``), as the trucks would."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from base.errors import CliError
from trivue.demo.place import SAMPLE_STREETS
from trivue.sim.cli import register
from trivue.sim.options import SimulateOptions
from trivue.sim.run import SimulationRun
from trivue.sim.trucks import edge_settings
from vision.rules import DEFAULT_RULES
from vision.schema import Stream


def local_rules(tmp_path: Path) -> Path:
    """A collectivité without biowaste nor paper collection, paper refused in its bac jaune."""
    spec = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    spec["name"] = "Consignes de tri de la Riviera"
    for stream in ("biowaste", "paper"):
        del spec["streams"][stream]
    recyclables = spec["streams"]["recyclables"]
    recyclables["accepted"].remove("paper")
    recyclables["error"].append("paper")
    path = tmp_path / "regles.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def options(tmp_path: Path, *args: str) -> SimulateOptions:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "sorting_rules": str(local_rules(tmp_path))}), encoding="utf-8")
    parsed = parser.parse_args(["simulate", "--config", str(config), "--streets", str(SAMPLE_STREETS), *args])
    parsed.verbose = False
    return SimulateOptions.from_args(parsed)


def test_a_stream_the_servers_rules_lack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        SimulationRun.from_options(options(tmp_path, "--stream", "biowaste"))
    message = str(caught.value)
    assert "--stream biowaste" in message and "regles.yaml" in message
    assert "recyclables, glass, residual" in message


def test_lifts_are_judged_by_the_servers_rules(tmp_path: Path) -> None:
    run = SimulationRun.from_options(options(tmp_path))
    assert run.rules.spec.name == "Consignes de tri de la Riviera"
    judged = run.rules.judge(Stream.recyclables, {"paper": 2})
    assert judged.contaminated  # the packaged rules accept paper in the bac jaune; these do not


def test_full_mode_trucks_get_the_servers_rules_file(tmp_path: Path) -> None:
    rules = local_rules(tmp_path)
    settings = edge_settings("sim-01", tmp_path, "mqtt://127.0.0.1:1883", "trivue/v1", Stream.recyclables,
                             rules=rules)
    assert settings.rules == rules


def test_trucks_the_servers_registry_lacks_are_named_before_publishing(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    run = SimulationRun.from_options(options(tmp_path, "--trucks", "3"))
    run.known_trucks = ("benne-01", "sim-01")
    with caplog.at_level("WARNING", logger="trivue.sim.run"):
        run.prepare()
    assert "trucks not in the server's known_trucks: sim-02, sim-03;" in caplog.text
