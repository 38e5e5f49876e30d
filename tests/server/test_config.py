"""Server settings: YAML file, TRIVUE_* environment, and errors that name the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from tests.server.edited_rules import edited_rules
from vision.rules import DEFAULT_RULES


def test_defaults_live_in_the_data_dir() -> None:
    settings = load_settings(env={})
    assert settings.db_url == "sqlite:///trivue-data/trivue.db"
    assert settings.evidence_path == Path("trivue-data/evidence")
    assert (settings.topic_prefix, settings.port, settings.dev) == ("trivue/v1", 8000, False)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "trivue.yaml"
    path.write_text("port: 8100\ntopic_prefix: metropole/v1\nknown_trucks: [benne-01]\n")
    env = {"TRIVUE_PORT": "9000", "TRIVUE_DATABASE_URL": "postgresql://trivue:s3cr3t-Pa55@db/trivue",
           "TRIVUE_BROKER_URL": "mqtts://broker.example:8883", "TRIVUE_KNOWN_TRUCKS": "benne-01, benne-02",
           "TRIVUE_SHARED": "/elsewhere", "HOME": "/root"}
    settings = load_settings(path, env=env)
    assert settings.port == 9000 and settings.topic_prefix == "metropole/v1"
    assert settings.known_trucks == ["benne-01", "benne-02"]
    assert settings.db_url == "postgresql://trivue:s3cr3t-Pa55@db/trivue"


@pytest.mark.parametrize(("text", "env", "message"), [
    # Installers read these lines, as the truck's: plain words, not pydantic's "Extra inputs are not permitted"
    ("colour: blue\n", {}, r"^\S*trivue.yaml: colour: unknown setting$"),
    ("", {"TRIVUE_PORT": "abc"}, r"^environment \(TRIVUE_PORT\): port: .*integer.*'abc'"),  # not blamed on the file
    # A misspelt setting was ignored without a word: the server ran on the default meant to change.
    ("", {"TRIVUE_RETENTON_DAYS": "30"},
     r"^TRIVUE_RETENTON_DAYS: not a setting \(did you mean TRIVUE_RETENTION_DAYS\?\)"),
    ("port: 70000\n", {"TRIVUE_HOST": "::1"}, r"^\S*trivue.yaml: port: .*65535"),
    ("port: 70000\n", {}, r"port: .*65535.*70000"),
    ("", {"TRIVUE_BROKER_URL": "http://broker"}, r"broker_url: .*mqtt://host:port"),
    ("timezone: Mars/Olympus\n", {}, r"timezone: unknown time zone \(got 'Mars/Olympus'\)$"),
    ("timezone: Europe\n", {}, r"timezone: unknown time zone \(got 'Europe'\)$"),  # a folder: IsADirectoryError
    # Named by where it came from (server.env, as docs/deployment.md puts passwords), like any bad value
    ("", {"TRIVUE_DATABASE_URL": "postgresql://trivue:changeme@db/trivue"},
     r"^environment \(TRIVUE_DATABASE_URL\): database_url: .*placeholder password 'changeme'"),
    ("broker_url: mqtt://edge:password@broker:1883\n", {}, r"^\S*trivue.yaml: broker_url: .*carries the placeholder"),
    ("topic_prefix: trivue/#\n", {}, r"topic_prefix: .*pattern"),
    # An empty registry refused every truck: each lift became a dead letter, ingest stopped without a word.
    ("", {"TRIVUE_KNOWN_TRUCKS": ""},
     r"^environment \(TRIVUE_KNOWN_TRUCKS\): known_trucks: .*no truck listed: every truck's messages would be "
     r"refused; to accept every truck, leave the setting out \(unset TRIVUE_KNOWN_TRUCKS\).*ingest_enabled: false"),
    ("", {"TRIVUE_KNOWN_TRUCKS": " , "}, r"^environment \(TRIVUE_KNOWN_TRUCKS\): known_trucks: .*no truck listed"),
    ("known_trucks: []\n", {}, r"^\S*trivue.yaml: known_trucks: .*no truck listed"),
    # A JSON list in the variable was one truck named '["benne-01"]': benne-01 refused.
    ("", {"TRIVUE_KNOWN_TRUCKS": '["benne-01"]'},
     r"known_trucks: .*'\[\"benne-01\"\]' is not a truck id \(write benne-01,benne-02\)"),
    ("- a list\n", {}, r"expected a mapping"),
    ("port: [\n", {}, r"not valid YAML"),
    # PyYAML keeps the last of two equal keys without a word: the operator reads the first
    ("port: 8000\nhost: 0.0.0.0\nport: 9000\n", {}, r"'port' given twice \(line 1 and line 3\)"),
    ("smtp:\n  host: a\n  host: b\n", {}, r"'host' given twice \(line 2 and line 3\)"),
])
def test_bad_settings_name_field_and_value(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "trivue.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env=env)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    """``<<: *defaults`` then a key of the defaults again is YAML's override, not a key given twice."""
    from base.strict_yaml import read_mapping

    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {port: 1, host: a}\nsite:\n  <<: *base\n  port: 2\n")
    assert read_mapping(path, ConfigError)["site"] == {"port": 2, "host": "a"}


def test_placeholder_secret_allowed_in_dev_mode() -> None:
    settings = load_settings(env={"TRIVUE_DATABASE_URL": "postgresql://u:changeme@db/t", "TRIVUE_DEV": "true"})
    assert settings.dev


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_sorting_rules_default_to_the_packaged_french_rules_and_follow_the_environment(tmp_path: Path) -> None:
    assert load_settings(env={}).sorting_rules == DEFAULT_RULES
    assert load_settings(env={}).load_sorting_rules().source == str(DEFAULT_RULES)
    own = edited_rules(tmp_path)
    path = tmp_path / "trivue.yaml"
    path.write_text(f"sorting_rules: {tmp_path / 'elsewhere.yaml'}\n")
    settings = load_settings(path, env={"TRIVUE_SORTING_RULES": str(own)})  # the environment wins, as for any
    assert settings.sorting_rules == own and "compostable_bag" in settings.load_sorting_rules().spec.classes


@pytest.mark.parametrize(("text", "message"), [
    (None, r"^sorting_rules: \S*regles\.yaml: rules file not found$"),
    ("streams: [\n", r"^sorting_rules: \S*regles\.yaml: not valid YAML"),
    ("version: 1\nname: x\nclasses: {}\nstreams: {glass: {label: Verre, accepted: [glass]}}\n",
     r"^sorting_rules: \S*regles\.yaml: .*stream 'glass' names classes not declared in 'classes': \['glass'\]"),
    ("version: 1\nname: x\nclasses: {}\nstreams: {}\ncolour: blue\n", r"^sorting_rules: .*colour: .*not permitted"),
])
def test_a_bad_rules_file_names_the_setting(tmp_path: Path, text: str | None, message: str) -> None:
    rules = tmp_path / "regles.yaml"
    if text is not None:
        rules.write_text(text)
    settings = load_settings(env={"TRIVUE_SORTING_RULES": str(rules)})  # a path: read when the server starts
    with pytest.raises(ConfigError, match=message):
        settings.load_sorting_rules()


def test_a_bad_rules_file_stops_the_app_before_the_database(tmp_path: Path) -> None:
    from server.app import create_app

    settings = load_settings(env={}, data_dir=tmp_path / "data", ingest_enabled=False,
                             sorting_rules=tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"^sorting_rules: \S*nope\.yaml: rules file not found"):
        create_app(settings)
    assert not (tmp_path / "data").exists()  # nothing created, nothing migrated


@pytest.mark.parametrize("url", ["mqtt://trivue:s3cr@t-pw@", "http://trivue:s3cr@t-pw@broker:1883",
                                 "http://trivue:s3cr/t-pw@broker:1883", "http://trivue:s3cr't-pw@broker:1883"])
def test_a_refused_broker_url_keeps_its_password_out_of_the_message(tmp_path: Path, url: str) -> None:
    """The error line goes to a journal or a support ticket: it named 'mqtt://trivue:s3cr@t-pw@' in full."""
    with pytest.raises(ConfigError, match=r"broker_url: ") as error:
        load_settings(None, env={"TRIVUE_BROKER_URL": url})
    assert "s3cr" not in str(error.value) and "t-pw" not in str(error.value)
    assert "trivue:***@" in str(error.value)


@pytest.mark.parametrize(("text", "message"), [
    ("broker_url: foo://x\n", "broker_url: expected mqtt://host:port or mqtts://host:port (got 'foo://x')"),
    ("basemap_url: ftp://x/{z}/{x}/{y}\nbasemap_attribution: x\n",
     "basemap_url: expected an https:// tile URL (got 'ftp://x/{z}/{x}/{y}')"),
])
def test_a_refused_value_is_named_once_without_pydantic_words(tmp_path: Path, text: str, message: str) -> None:
    """It read "broker_url: Value error, expected ..., got 'foo://x' (got 'foo://x')"."""
    path = tmp_path / "trivue.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, env={})
    assert str(error.value) == f"{path}: {message}"


def test_a_bad_override_is_blamed_on_the_command_line(tmp_path: Path) -> None:
    """``trivue streets import --database-url ...`` was blamed on the --config file, or on "settings"."""
    path = tmp_path / "trivue.yaml"
    path.write_text("port: 8100\n")
    with pytest.raises(ConfigError, match=r"^command line: database_url: .*placeholder password 'changeme'"):
        load_settings(path, env={}, overrides_source="command line", database_url="postgresql://u:changeme@db/t")
    path.write_text("port: 0\n")
    with pytest.raises(ConfigError, match=r"^command line, \S*trivue.yaml: database_url: .*; port: "):
        load_settings(path, env={}, overrides_source="command line", database_url="postgresql://u:changeme@db/t")
