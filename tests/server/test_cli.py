"""``trivue users``, ``trivue tokens`` and ``trivue server`` as a user runs them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import load_settings
from tests.conftest import BrokerAddress, free_port
from trivue.cli import main


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", database_url)
    return database_url


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def test_users_and_tokens(cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["users", "add", "claude", "--role", "manager"], monkeypatch, "un mot de passe long\n") == 0
    assert run(["users", "add", "claude", "--role", "viewer"], monkeypatch, "un autre mot de passe\n") == 2
    assert "user 'claude' already exists" in capsys.readouterr().err
    assert run(["users", "add", "dom", "--role", "viewer"], monkeypatch, "court\n") == 2
    assert "password too short" in capsys.readouterr().err
    assert run(["users", "add", "dom", "--role", "viewer"], monkeypatch, "") == 2
    assert "no password on stdin" in capsys.readouterr().err
    assert run(["tokens", "create", "--role", "viewer", "--name", " "], monkeypatch) == 2
    assert "--name: empty" in capsys.readouterr().err
    assert run(["tokens", "create", "--role", "viewer", "--name", "grafana"], monkeypatch) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("trv_") and len(token) > 40
    assert run(["users", "list"], monkeypatch) == 0
    assert "claude\tmanager\tactive" in capsys.readouterr().out

    app = create_app(load_settings(ingest_enabled=False))
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/api/streets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/lifts", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        login = client.post("/api/login", json={"name": "claude", "password": "un mot de passe long"})
        assert login.status_code == 200 and login.json()["role"] == "manager"


def test_an_empty_model_registry_says_so(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "list"], monkeypatch) == 0
    assert capsys.readouterr().out.strip() == "no model published yet: trivue models publish MODEL.onnx"


def test_config_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path) -> None:
    monkeypatch.setenv("TRIVUE_PORT", "huit-mille")
    assert run(["users", "list"], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trivue users: error: environment (TRIVUE_PORT): port:") and "'huit-mille'" in err
    assert run(["server", "--config", str(tmp_path / "absent.yaml")], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "absent.yaml" in err and "not found" in err, err


def test_server_runs_api_and_ingest_and_stops_cleanly(tmp_path: Path, mqtt_broker: BrokerAddress) -> None:
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, "TRIVUE_DATA_DIR": str(tmp_path / "data"), "TRIVUE_BROKER_URL": mqtt_broker.url,
           "TRIVUE_TOPIC_PREFIX": f"cli-{tag}/v1", "TRIVUE_MQTT_CLIENT_ID": f"cli-{tag}", "TRIVUE_PORT": str(port)}
    env.pop("TRIVUE_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "trivue", "server", "--dev"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = wait_health(f"http://127.0.0.1:{port}/api/health")
        assert health["broker"] == "connected" and health["dev"] is True
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see why it stopped.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert "DEV MODE" in output and "ingest stopped" in output
    assert (tmp_path / "data" / "trivue.db").is_file()


def wait_health(url: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=1)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def test_dead_letters_replay_after_registering_a_truck(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from server.audit import AuditEntry
    from server.cli import open_database
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox, MqttMessage
    from server.ingest.metrics import Metrics
    from server.ingest.models import DeadLetter, Lift
    from tests.server.events import lift_event

    settings = load_settings(known_trucks=["benne-01"])
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    now = datetime.now(UTC)
    with open_database(settings) as session:
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-02/lift", lift_event("benne-02").to_json()
                                      .encode(), now),
                              MqttMessage(f"{settings.topic_prefix}/benne-01/lift", b"{broken", now)])
        session.commit()
    monkeypatch.setenv("TRIVUE_KNOWN_TRUCKS", "benne-01,benne-02")
    assert run(["dead-letters", "replay", "--reason", "unknown_truck"], monkeypatch) == 0
    assert "1 dead letters replayed: 1 stored, 0 refused again" in capsys.readouterr().err
    assert run(["dead-letters", "replay"], monkeypatch) == 0  # the broken one is refused again
    assert "1 dead letters replayed: 0 stored, 1 refused again" in capsys.readouterr().err
    with open_database(settings) as session:
        assert session.scalar(select(func.count()).select_from(Lift)) == 1
        assert list(session.scalars(select(DeadLetter.reason))) == ["invalid_json"]
    with open_database(settings) as session:  # both replays are on the audit trail, with their outcome
        replays = list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "dead_letters.replay")
                                       .order_by(AuditEntry.id)))
    assert replays == ["1 replayed: 1 stored, 0 refused again (reason=unknown_truck)",
                       "1 replayed: 0 stored, 1 refused again"]


def test_dead_letters_list_counts_and_shows_the_newest_without_payloads(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from datetime import UTC, datetime

    from sqlalchemy import select

    from server.audit import AuditEntry
    from server.cli import open_database
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox, MqttMessage
    from server.ingest.metrics import Metrics
    from tests.server.events import lift_event

    settings = load_settings(known_trucks=["benne-01"])
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    secret = lift_event("benne-02").to_json()  # an unknown truck's lift: its payload holds a GPS fix
    with open_database(settings) as session:
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-02/lift", secret.encode(), datetime.now(UTC)),
                              *(MqttMessage(f"{settings.topic_prefix}/benne-01/lift", b"{broken" + bytes([48 + i]),
                                            datetime.now(UTC)) for i in range(3))])
        session.commit()
    assert run(["dead-letters", "list", "--limit", "2"], monkeypatch) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "4 dead letters: invalid_json 3, unknown_truck 1"
    # What the API and the data-quality page say, the command line too: held whole, against the cap.
    assert out[1] == "held whole for a replay: 0 letters, 0.0 KiB of the 512.0 MiB of dead_letter_held_bytes"
    assert len(out) == 4 and all(" invalid_json benne-01 " in line for line in out[2:])  # the newest two
    assert run(["dead-letters", "list", "--reason", "unknown_truck", "--json"], monkeypatch) == 0
    printed = capsys.readouterr().out
    listed = json.loads(printed)
    assert listed["counts"] == {"invalid_json": 3, "unknown_truck": 1}
    [letter] = listed["items"]
    assert (letter["truck_id"], letter["reason"], letter["replayable"]) == ("benne-02", "unknown_truck", True)
    assert letter["payload_size"] == len(secret.encode())
    assert set(letter) == {"id", "received_at", "truck_id", "reason", "topic", "payload_size", "replayable", "detail"}
    assert json.loads(secret)["event_id"] not in printed  # nothing of the payload itself
    assert run(["dead-letters", "list", "--reason", "unknown-truck"], monkeypatch) == 2  # a typo, not "none"
    assert "--reason 'unknown-truck': one of invalid_json, schema, truck_mismatch, unknown_truck" in \
        capsys.readouterr().err
    assert run(["dead-letters", "list", "--reason", "bad_jpeg"], monkeypatch) == 0  # a reason, none stored
    listed = capsys.readouterr()
    assert "no dead letter has the reason 'bad_jpeg'; stored reasons: invalid_json, unknown_truck" in listed.err
    assert listed.out.splitlines()[0] == "4 dead letters: invalid_json 3, unknown_truck 1"
    assert len(listed.out.splitlines()) == 2
    with open_database(settings) as session:  # an unregistered truck's photo: held whole beyond 4 KiB
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-02/evidence/{uuid.uuid4()}",
                                          b"\xff\xd8" + bytes(3 * 1024 * 1024 // 4), datetime.now(UTC))])
        session.commit()
    assert run(["dead-letters", "list", "--json"], monkeypatch) == 0
    held = json.loads(capsys.readouterr().out)["held"]
    assert held == {"letters": 1, "bytes": 2 + 3 * 1024 * 1024 // 4, "limit_bytes": 512 * 1024 * 1024}
    assert run(["dead-letters", "list"], monkeypatch) == 0
    assert capsys.readouterr().out.splitlines()[1] == ("held whole for a replay: 1 letters, 768.0 KiB of the 512.0 MiB "
                                                       "of dead_letter_held_bytes")
    assert run(["dead-letters", "list", "--limit", "0"], monkeypatch) == 2
    assert "--limit must be 1 to 1000, got 0" in capsys.readouterr().err
    with open_database(settings) as session:
        reads = list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "dead_letters.read")))
    assert reads[:3] == ["2 messages, payloads hidden", "1 messages, payloads hidden", "0 messages, payloads hidden"]


def test_partitions_lists_and_creates_months_ahead(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["partitions", "--ahead", "200"], monkeypatch) == 2
    assert "--ahead: between 0 and 120 months (got 200)" in capsys.readouterr().err
    assert run(["partitions", "--ahead", "8"], monkeypatch) == 0
    out, err = capsys.readouterr()
    if cli_env.startswith("sqlite"):
        # Named: a cron job run without server.env's TRIVUE_DATABASE_URL lands on data_dir's SQLite file
        # and said only "nothing to do", exit 0, every night, while PostgreSQL's months ran out.
        assert "not partitioned (SQLite" in err and out == ""
        assert f"SQLite, {cli_env})" in err and "TRIVUE_DATABASE_URL" in err, err
        return
    lines = out.splitlines()
    assert lines[-1].startswith("lifts_pdefault\tdefault")
    assert len(lines) == 1 + 10 and sum("(created now)" in line for line in lines) == 5  # the server made 3 ahead
    assert run(["partitions", "--ahead", "8"], monkeypatch) == 0
    assert "(created now)" not in capsys.readouterr().out


@pytest.mark.parametrize(("url", "says"), [
    ("garbage", "database_url: 'garbage' is not a database URL"),
    ("postgresql://trivue:hunter2@127.0.0.1:{port}/trivue", "cannot be used: connection failed"),
    ("sqlite:///{tmp}/not-a-database.db", "cannot be used: file is not a database"),
    ("sqlite:///{tmp}/no/such/folder/x.db", "cannot be used: unable to open database file"),
    ("postgresql://trivue:hunter2@host:port/trivue", "is not a database URL"),
    # a driver SQLAlchemy knows but Trivue neither installs nor migrates for: was a ModuleNotFoundError
    ("mysql://trivue:hunter2@127.0.0.1/trivue", "Trivue stores its data in SQLite or PostgreSQL"),
])
@pytest.mark.parametrize("argv", [["users", "list"], ["dead-letters", "list"], ["streets", "stats"],
                                  ["server", "--no-ingest"]])
def test_a_database_that_cannot_be_used_stops_a_command_with_the_reason(
        argv: list[str], url: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-a-database.db").write_bytes(b"a photo, not a database\n" * 100)
    url = url.format(tmp=tmp_path, port=free_port())  # a port nothing listens on
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", url)
    monkeypatch.setenv("TRIVUE_PORT", str(free_port()))  # 8000 may be taken (a demo): checked first
    assert run(argv, monkeypatch) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert "hunter2" not in err  # the password never printed


@pytest.mark.parametrize("setting", ["TRIVUE_DATA_DIR", "TRIVUE_EVIDENCE_DIR"])
def test_a_folder_setting_that_names_a_file_stops_start_up_naming_it(
        setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(setting, str(tmp_path / "a-file"))
    monkeypatch.setenv("TRIVUE_PORT", str(free_port()))  # 8000 may be taken (a demo): checked first
    field = setting.removeprefix("TRIVUE_").lower()
    for argv in (["users", "list"], ["server", "--no-ingest"]):
        assert run(argv, monkeypatch) == 2
        assert f"{field}: '{tmp_path / 'a-file'}' cannot be used as a folder" in capsys.readouterr().err


def test_a_listener_that_cannot_be_opened_stops_the_server_naming_the_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    assert run(["server", "--no-ingest", "--host", "bad host!!"], monkeypatch) == 2
    assert "host: 'bad host!!' is not an address this machine can listen on" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(["server", "--no-ingest", "--port", str(port)], monkeypatch) == 2
    assert f"port: cannot listen on 127.0.0.1:{port} (Address already in use)" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # refused before anything was created


def _store_a_lift() -> None:
    """One lift through the real ingest into the database the environment names (no GPS: unmatched)."""
    from datetime import UTC, datetime

    from server.cli import open_database
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox, MqttMessage
    from server.ingest.metrics import Metrics
    from tests.server.events import lift_event

    settings = load_settings()
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    with open_database(settings) as session:
        event = lift_event("benne-01", gps=None).to_json().encode()
        assert inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/lift", event,
                                                 datetime.now(UTC))]) == 0
        session.commit()


def test_streets_import_speaks_of_rematch_only_when_lifts_are_stored(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.server.streets_db import FIXTURES

    streets = ["streets", "import", str(FIXTURES / "rennes-centre.geojson"), "--commune", "Rennes"]
    assert run(streets, monkeypatch) == 0
    assert "rematch" not in capsys.readouterr().out, "a new database holds no lift to re-match"
    _store_a_lift()
    assert run(streets, monkeypatch) == 0
    assert "Stored lifts keep their old street until `trivue streets rematch`." in capsys.readouterr().out


def test_address_and_bin_imports_speak_of_rematch_only_when_it_is_true(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The hint is printed where stored lifts would really keep a stale address or street: not on a
    new database, not for a bin file that changed nothing."""
    from tests.server.streets_db import FIXTURES

    assert run(["streets", "import", str(FIXTURES / "rennes-centre.geojson"), "--commune", "Rennes"], monkeypatch) == 0
    addresses = ["addresses", "import", str(FIXTURES / "ban-rennes-centre.csv")]
    bins = tmp_path / "parc-de-bacs.csv"
    bins.write_text("tag;address\nE2801160000000C1;35238_1010_00001\n", encoding="utf-8")
    assert run(addresses, monkeypatch) == 0
    assert run(["bins", "import", str(bins)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "1 bins added" in out and "rematch" not in out, "a new database holds no lift to re-match"
    _store_a_lift()
    assert run(["bins", "import", str(bins)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "1 unchanged" in out and "rematch" not in out, "an unchanged registry moves no stored lift"
    bins.write_text("tag;address\nE2801160000000C1;35238_1010_00002\n", encoding="utf-8")
    assert run(["bins", "import", str(bins)], monkeypatch) == 0
    assert "stored lifts keep their street until `trivue streets rematch`" in capsys.readouterr().out
    assert run(addresses, monkeypatch) == 0
    assert "Stored lifts keep their old address and street until `trivue streets rematch`." in (
        capsys.readouterr().out)


def test_partitions_without_statistics_count_their_lifts(cli_env: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from server.cli import open_database
    from server.ingest import partitions
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox, MqttMessage
    from server.ingest.metrics import Metrics
    from tests.server.events import lift_event

    settings = load_settings()
    now = datetime.now(UTC)
    month = partitions.partition_name(now.date().replace(day=1))
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    with open_database(settings) as session:
        pg = session.get_bind().dialect.name == "postgresql"
        if pg:  # analysed while empty, filled since (autovacuum off): its statistics say 0
            session.execute(text(f"ANALYZE {month}"))
        messages = [MqttMessage(f"{settings.topic_prefix}/benne-01/lift",
                                lift_event("benne-01", sequence=i, gps=None).to_json().encode(), now)
                    for i in range(1, 4)]
        assert inbox.write(session, messages) == 0
        session.commit()
    assert run(["partitions"], monkeypatch) == 0
    out = capsys.readouterr().out
    if not pg:
        assert out == ""
        return
    lines = {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines()}
    assert lines[month] == "3 lifts", out
    assert lines[partitions.DEFAULT] == "0 lifts"
    monkeypatch.setattr(partitions, "COUNT_CAP", 2)
    assert run(["partitions"], monkeypatch) == 0
    lines = {line.split("\t")[0]: line.split("\t")[2] for line in capsys.readouterr().out.splitlines()}
    assert lines[month] == "over 2 lifts (not analysed: run ANALYZE lifts for an estimate)"
    with open_database(settings) as session:
        session.execute(text(f"ANALYZE {month}"))
        session.commit()
    assert run(["partitions"], monkeypatch) == 0
    lines = {line.split("\t")[0]: line.split("\t")[2] for line in capsys.readouterr().out.splitlines()}
    assert lines[month] == "~3 lifts"
