"""EdgeSettings: YAML < environment < command line; unknown keys and bad values name the field."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from edge.config import BrokerUrl, ConfigError, TrackingSettings, env_overrides, load_settings
from vision.tracking import TrackerSettings


def test_precedence_yaml_env_overrides(tmp_path: Path) -> None:
    config = tmp_path / "truck.yaml"
    config.write_text("truck_id: T1\nsource: bursts\nstream: glass\nuplink: {topic_prefix: a/b}\n")
    env = {"TRIVUE_EDGE_STREAM": "residual", "TRIVUE_EDGE_UPLINK__BROKER": "mqtts://u:p@h:8884",
           "TRIVUE_EDGE_TRACKING__MIN_TRACK_FRAMES": "3", "OTHER": "x"}
    settings = load_settings(config, {"truck_id": "T2"}, environ=env)
    assert (settings.truck_id, settings.stream.value, settings.tracking.min_track_frames) == ("T2", "residual", 3)
    assert settings.uplink.topic_prefix == "a/b" and settings.topic("lift") == "a/b/T2/lift"
    assert settings.client_id == "trivue-edge-T2"


def test_env_tree() -> None:
    assert env_overrides({"TRIVUE_EDGE_GPS__SOURCE": "fixed:1,2", "TRIVUE_EDGE_CONF": "0.4"}) == {
        "gps": {"source": "fixed:1,2"}, "conf": 0.4}


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"source": "x"}, "truck_id: required"),
        ({"truck_id": "bad id!", "source": "x"}, "truck_id: String should match pattern"),
        ({"truck_id": "T", "source": "x", "evidence": {"retention_dayz": 3}}, "evidence.retention_dayz: unknown"),
        ({"truck_id": "T", "source": "x", "hopper": [[0, 0], [1, 1]]}, "hopper: List should have at least 3"),
        ({"truck_id": "T", "source": "x", "tracking": {"high_conf": 0.45}}, "activation_conf would not apply"),
        ({"truck_id": "T", "source": "x", "hopper": [[0, 0], [5, 0], [0.5, 1]]},
         "hopper.1.0: Input should be less than or equal to 1 (got 5)"),
        ({"truck_id": "T", "source": "x", "uplink": {"broker": "mqtt://h:99999"}}, "bad port"),
        ({"truck_id": "T", "source": "x", "trigger": {"kind": "serial"}}, "trigger: kind 'serial' needs serial_port"),
        ({"truck_id": "T", "source": "x", "trigger": {"kind": "mqtt"}}, "trigger: kind 'mqtt' needs mqtt_broker"),
    ],
)
def test_errors_name_field_and_value(tree: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^settings: ") as error:
        load_settings(None, tree, environ={})
    assert message in str(error.value)


def test_env_error_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"conf: .* \(got 'high'\)"):
        load_settings(None, {"truck_id": "T", "source": "x"}, environ={"TRIVUE_EDGE_CONF": "high"})


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"TRIVUE_EDGE_UPLINK__BROKR": "mqtt://h"}, {},
         "environment (TRIVUE_EDGE_UPLINK__BROKR): uplink.brokr: unknown setting"),
        ({"TRIVUE_EDGE_HOPPER": "[[0, 0], [5, 0], [0, 1]]"}, {}, "environment (TRIVUE_EDGE_HOPPER): hopper.1.0:"),
        ({}, {"uplink": {"broker": "http://h"}}, "command line: uplink.broker: expected mqtt://"),
        ({}, {"stream": "plastic"}, "command line, {file}: stream: Input should be"),  # and the file's typo
    ],
)
def test_errors_name_where_the_bad_value_was_set(tmp_path: Path, env: dict[str, str], overrides: dict,
                                                 message: str) -> None:
    """A value from TRIVUE_EDGE_* or a flag was blamed on the file, which the installer then searched."""
    config = tmp_path / "truck.yaml"
    config.write_text("truck_id: T1\nsource: bursts\n" + ("evidence: {retention_dayz: 3}\n" if overrides.get(
        "stream") else ""), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, overrides, environ=env, overrides_source="command line")
    assert str(error.value).startswith(message.format(file=config)), error.value
    assert str(error.value).count("'http://h'") <= 1, error.value  # the value once ("(got ...)"), not twice


def test_a_section_and_a_value_in_the_environment_are_one_line() -> None:
    env = {"TRIVUE_EDGE_UPLINK": "x", "TRIVUE_EDGE_UPLINK__BROKER": "mqtt://h"}
    for order in (env, dict(reversed(env.items()))):  # was a TypeError, or the last one read won
        with pytest.raises(ConfigError, match="TRIVUE_EDGE_UPLINK sets uplink to a value, but "
                                              "TRIVUE_EDGE_UPLINK__BROKER sets a setting inside it"):
            load_settings(None, {"truck_id": "T", "source": "x"}, environ=order)


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("mqtt://h", ("h", 1883, False, None, None)),
        ("mqtts://user:p%40ss@broker.example:8884", ("broker.example", 8884, True, "user", "p@ss")),
    ],
)
def test_broker_url(url: str, parts: tuple) -> None:
    parsed = BrokerUrl.parse(url)
    assert (parsed.host, parsed.port, parsed.tls, parsed.username, parsed.password) == parts
    assert "p@ss" not in str(parsed) and "%40" not in str(parsed)


def test_the_example_configuration_is_valid() -> None:
    from base.paths import REPO_ROOT

    settings = load_settings(REPO_ROOT / "edge" / "truck.example.yaml", environ={})
    assert settings.truck_id == "OM-BOM-12" and settings.uplink.broker.startswith("mqtts://")
    # Its comments name the same truck: the token command said --truck-id benne-07 for truck OM-BOM-12,
    # and a token for another truck is refused on every download.
    text = (REPO_ROOT / "edge" / "truck.example.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"--truck-id (\S+)", text))
    assert named == {settings.truck_id}, named


def test_the_example_broker_account_is_the_truck_id() -> None:
    """The shipped ACL (deploy/mosquitto/acl) lets account %u write trivue/v1/%u/... only, and
    add-truck.sh names the account after the truck: an example account of another name
    (truck-om-bom-12 for OM-BOM-12) had every lift dropped by the broker, the outbox growing."""
    from base.paths import REPO_ROOT

    settings = load_settings(REPO_ROOT / "edge" / "truck.example.yaml", environ={})
    assert BrokerUrl.parse(settings.uplink.broker).username == settings.truck_id


def test_detector_workers_and_threads_resolve_against_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    base = {"truck_id": "T", "source": "x"}
    auto = load_settings(None, base, environ={})
    assert (auto.workers, auto.detector_workers, auto.detector_threads) == ("auto", 2, 1)
    serial = load_settings(None, base, environ={"TRIVUE_EDGE_WORKERS": "1"})
    assert (serial.detector_workers, serial.detector_threads) == (1, 2)
    pinned = load_settings(None, {**base, "workers": 2, "threads": 2}, environ={})
    assert (pinned.detector_workers, pinned.detector_threads) == (2, 2)
    for bad in (0, "many", 1.5):
        with pytest.raises(ConfigError, match=r"workers") as refused:
            load_settings(None, {**base, "workers": bad}, environ={})
        # one field, as the user typed it: pydantic's union branches (workers.constrained-int,
        # workers.literal['auto']) are no setting of the file
        assert "constrained" not in str(refused.value) and "literal[" not in str(refused.value), refused.value
        assert str(refused.value).count("workers") == 1, refused.value


def test_tracking_settings_are_the_trackers_knobs() -> None:
    # edge's settings feed vision's TrackerSettings by name: same names, same defaults.
    knobs = TrackingSettings().model_dump(exclude={"min_track_frames"})
    assert knobs == {k: v for k, v in asdict(TrackerSettings()).items() if k != "frame_rate"}


def test_evidence_defaults_under_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(None, {"truck_id": "T", "source": "x"}, environ={})
    assert settings.evidence.dir == tmp_path / "data" / "edge-evidence"


def test_model_update_settings_are_checked() -> None:
    from edge.config import ConfigError, load_settings

    base = {"truck_id": "benne-07", "source": "x"}
    assert load_settings(None, {**base, "models": {"server": "https://trivue.example.org"}}, environ={}).models.server
    for models, words in (({"server": "ftp://x"}, "expected https://host[:port]"),
                          ({"token": "a", "token_file": "/t"}, "token and token_file are both set"),
                          ({"sever": "https://x"}, "unknown setting")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            load_settings(None, {**base, "models": models}, environ={})


@pytest.mark.parametrize("url", ["mqtt://u:s3cr@t-pw@", "mqtt://u:s3cr/t-pw@host:99999", "mqtt://u:s3cr't-pw@host:x"])
def test_a_refused_broker_url_keeps_its_password_out_of_the_message(url: str) -> None:
    """Flag, environment or file: the error line named 'mqtt://u:s3cr@t-pw@' in full."""
    with pytest.raises(ConfigError, match=r"uplink\.broker: ") as error:
        load_settings(None, {"truck_id": "T", "source": "x", "uplink": {"broker": url}}, environ={})
    assert "s3cr" not in str(error.value) and "t-pw" not in str(error.value)
    assert "u:***@" in str(error.value)


def test_a_value_the_check_already_names_is_said_once() -> None:
    # The band's own check names the band it got: describe() adding "(got [...])" said it twice.
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"truck_id": "T", "source": "x", "evidence": {"uncertain_band": [0.5, 0.25]}}, environ={})
    message = str(error.value)
    assert "evidence.uncertain_band: needs 0 <= low < high <= 1, got [0.5, 0.25]" in message
    assert message.count("0.25") == 1


def test_a_message_saying_got_without_the_value_still_shows_it() -> None:
    # Pydantic's "Input should be a valid integer, got a number with a fractional part" names no value:
    # "(got 2.5)" was dropped with the ones a check names itself, and the reader never saw the 2.5.
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"truck_id": "T", "source": "x", "evidence": {"retention_days": 2.5}}, environ={})
    assert "evidence.retention_days: Input should be a valid integer, got a number with a fractional part (got 2.5)" \
        in str(error.value)
