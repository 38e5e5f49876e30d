"""``trivue judge``, ``simulate`` and ``demo`` refuse bad options in one line, exit 2, before anything
starts (no model loaded, no broker reached, no server started, nothing written)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from base.errors import CliError
from base.paths import SAMPLE_STREETS
from trivue.cli import main

SAMPLE_PHOTOS = Path(__file__).parents[2] / "trivue" / "sample" / "images" / "clean"
LOGGED_WARNING = re.compile(r"\d{2}:\d{2}:\d{2} WARNING ")


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]) -> str:
    """The command's one error line, after checking exit 2 and no traceback. A warning logged on the way
    is not that line (the demo says it falls back to the committed Rennes extract where ../shared is
    absent)."""
    code = main([a.format(tmp=tmp_path, photos=SAMPLE_PHOTOS) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    said = [line for line in err.strip().splitlines() if not LOGGED_WARNING.match(line)]
    assert "Traceback" not in err and len(said) == 1, err
    return said[0] + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-3"], "--limit -3: expected 0 (all photos) or more"),
        (["--images", "{tmp}/empty"], "no images (.bmp, .jpeg, .jpg, .png, .webp) in {tmp}/empty"),
        (["--images", "{photos}", "--out", "{tmp}/a-file"], "--out {tmp}/a-file: cannot be a folder: File exists"),
        (["--images", "{photos}", "--out", "{tmp}/a-file/sub"], "--out {tmp}/a-file/sub: cannot be a folder: Not a"),
    ],
)
@pytest.mark.parametrize("command", [["judge"], ["demo", "--photos"]])
def test_judge_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], args: list[str],
                         message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    err = run(capsys, tmp_path, [*command, *args, "--model", "{tmp}/absent.onnx"])
    assert message.format(tmp=tmp_path) in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duplicates", "2"], "--duplicates 2.0: expected a share between 0 and 1"),
        (["--skew-share", "7"], "--skew-share 7.0: expected a share between 0 and 1"),
        (["--malformed", "-1"], "--malformed -1.0: expected a share between 0 and 1"),
        (["--outage-share", "1.5"], "--outage-share 1.5: expected a share between 0 and 1"),
        (["--connections", "-1"], "--connections -1: expected 0 (one per truck) or more"),
        (["--speed", "-1"], "--speed -1.0: expected 0 (as fast as possible) or more"),
        (["--days", "-1"], "--days -1: expected 1 or more"),
        (["--days", "0"], "--days 0: expected 1 or more"),
        (["--round-km", "0"], "--round-km 0.0: expected a length above 0"),
        (["--gps-sigma", "-3"], "--gps-sigma -3.0: expected 0 (exact fixes) or more"),
        (["--broker-restart", "-5", "--embedded-broker"], "--broker-restart -5.0: expected 0 seconds or more"),
        (["--street-rate", "foo=0.5"], "--street-rate 'foo': no street of that name in the streets simulated"),
        (["--street-rate", "Allée Coysevoxx=0.5"], "(did you mean 'Allée Coysevox'"),
        (["--area", "999,999,100"], "latitude is -90..90 and longitude -180..180 degrees"),
        (["--area", "48.11,-1.68,-5"], "the radius is metres above 0"),
        (["--truth", __file__], "a file is there; the truth is a folder"),
        (["--model", "{tmp}/nosuch.onnx"], "nosuch.onnx: no such model file"),
        (["--camera-dark", "sim-01"], "--camera-dark 'sim-01': expected TRUCK:FIRST+LIFTS, e.g. sim-02:100+40"),
        (["--camera-dark", "sim-01:5+0"], "--camera-dark 'sim-01:5+0': a truck id, FIRST >= 0 and LIFTS >= 1"),
        # options nothing would read: they were silently ignored
        (["--database-url", "sqlite:///{tmp}/x.db"], "--database-url is not read with --streets"),
        (["--mode", "full", "--connections", "2"], "--connections is for events mode"),
        (["--images", "{photos}", "{photos}"], "--images is for full mode"),
        (["--mode", "full", "--evidence-photos", "{photos}"], "--evidence-photos is for events mode"),
        # named as typed, before the scenario is built: it was "broker 'http://x'" after it, and a bad
        # --database-url was blamed on "settings", a file the operator had not given
        (["--broker", "http://x"], "--broker 'http://x': expected mqtt://host:port or mqtts://host:port"),
        (["--broker", "mqtt://u:pw@:1883"], "--broker 'mqtt://u:***@:1883': expected mqtt://host:port"),
        (["--store-households", "--database-url", "postgresql://u:changeme@h/db"],
         "--database-url: database_url: carries the placeholder password 'changeme'"),
    ],
)
def test_simulate_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                              args: list[str], message: str) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    # Port 1 has no broker: an option that passed would fail later, saying so, not with this message.
    err = run(capsys, tmp_path, ["simulate", "--streets", str(SAMPLE_STREETS), "--round-km", "0.2",
                                 "--broker", "mqtt://127.0.0.1:1", *args])
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "-5"], "--duration -5.0: expected 0 (until Ctrl-C) or more"),
        (["--history-days", "-2"], "--history-days -2: expected 0 (no history) or more"),
        (["--speed", "-1"], "--speed -1.0: expected 0 (as fast as possible) or more"),
        (["--model", "{tmp}/nosuch.onnx"], "nosuch.onnx: no such model file"),  # not a silent simulated fleet
    ],
)
def test_demo_bad_options_stop_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                      message: str) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))

    def started(*_: object) -> None:  # an option let through would start the demo: fail at once, not hang
        raise AssertionError("the demo started")

    monkeypatch.setattr("trivue.demo.showcase.Showcase.__init__", started)
    err = run(capsys, tmp_path, ["demo", *args])
    assert message in err
    assert not (tmp_path / "data").exists()  # no database, no broker, no server: nothing was started


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRIVUE_PORT": "abc"}, "TRIVUE_PORT='abc': expected a port number from 1 to 65535"),
        ({"TRIVUE_PORT": "70000"}, "TRIVUE_PORT='70000': expected a port number from 1 to 65535"),
        ({"TRIVUE_DATABASE_URL": "notaurl"}, "database_url: 'notaurl' is not a database URL"),
        ({"TRIVUE_DATABASE_URL": "mysql://u@localhost/x"}, "Trivue stores its data in SQLite or PostgreSQL"),
        ({"TRIVUE_DATABASE_URL": "sqlite:///{tmp}/no/such/dir/x.db"}, "cannot be used: unable to open database file"),
        ({"TRIVUE_DATA_DIR": "{tmp}/a-file"}, "data_dir: '{tmp}/a-file' cannot be used as a folder: File exists"),
    ],
)
def test_demo_bad_environment_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    """TRIVUE_PORT, TRIVUE_DATABASE_URL and TRIVUE_DATA_DIR as the demo reads them: a traceback each before."""
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    monkeypatch.setattr("signal.signal", lambda *_: None)  # the demo's SIGTERM handler: not in pytest's process
    code = main(["demo", "--duration", "0.1", "--history-days", "0", "--events-only"])
    err = capsys.readouterr().err  # the broker's start and stop are logged, then the one error line
    assert code == 2 and "Traceback" not in err, err
    assert message.format(tmp=tmp_path) in err.strip().splitlines()[-1]


def test_demo_disk_full_while_starting_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A data folder that fills up (or turns read-only) while the demo writes: the reason, exit 2,
    everything started stopped."""
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("signal.signal", lambda *_: None)
    stopped: list[bool] = []

    def full(_self: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "data" / "simulation" / "lifts.csv"))

    monkeypatch.setattr("trivue.demo.showcase.Showcase.start", full)
    monkeypatch.setattr("trivue.demo.showcase.Showcase.stop", lambda _self: stopped.append(True))
    err = run(capsys, tmp_path, ["demo"])
    assert f"{tmp_path}/data/simulation/lifts.csv: No space left on device" in err
    assert stopped == [True]


def test_demo_port_of_a_demo_just_stopped_is_free() -> None:
    """TRIVUE_PORT=8080 right after a demo on 8080 stopped: its connections in TIME_WAIT do not stop
    the server from listening (uvicorn binds with SO_REUSEADDR), so they must not stop the demo."""
    import socket

    from trivue.demo.place import demo_port

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(CliError, match=f"TRIVUE_PORT={port} is already in use"):
            demo_port(str(port))
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME_WAIT
        client.close()
    assert demo_port(str(port)) == port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "full"], "MQTT broker 127.0.0.1:1 not reachable (Connection refused)"),  # was: minutes, then
        (["--mode", "full", "--broker", "http://x"], "broker 'http://x': expected mqtt://host:port"),
        (["--broker", "http://x"], "broker 'http://x': expected mqtt://host:port"),
    ],
)
def test_simulate_broker_is_checked_before_the_round(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                     message: str) -> None:
    """Full mode's agents retried an absent broker while every lift was played, then waited a minute
    per truck for acknowledgements: events mode said at once that the broker was not there."""
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("trivue.sim.fullmode.FullRun.__init__", lambda *_: pytest.fail("the agents started"))
    code = main(["simulate", "--streets", str(SAMPLE_STREETS), "--round-km", "0.2", "--broker", "mqtt://127.0.0.1:1",
                 *args])
    err = capsys.readouterr().err  # the scenario's log line, then the one error line
    assert code == 2 and "Traceback" not in err, err
    assert message in err.strip().splitlines()[-1]


def test_a_second_demo_on_the_same_data_folder_stops_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two demos on one data folder shared its database and the trucks' outboxes: the second's
    trucks read "stopped" when the first stopped. The second now stops, naming the first's pid,
    before opening the database; once the first has stopped, the folder is free again."""
    import os

    from trivue.demo.folder_lock import FolderLock

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(data))
    monkeypatch.setattr("signal.signal", lambda *_: None)
    first = FolderLock(data)
    first.acquire()
    code = main(["demo", "--duration", "0.1", "--history-days", "0", "--events-only"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"data folder {data}: another trivue demo is using it (pid {os.getpid()})" in err.strip().splitlines()[-1]
    assert not (data / "trivue.db").exists(), "the second demo opened the database"
    first.release()
    again = FolderLock(data)
    again.acquire()  # free once the first let go (a process that ends lets go too)
    again.release()
