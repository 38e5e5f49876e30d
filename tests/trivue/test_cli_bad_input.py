"""``trivue judge``, ``simulate`` and ``demo`` refuse bad options in one line, exit 2, before anything
starts (no model loaded, no broker reached, no server started, nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from base.paths import SAMPLE_STREETS
from trivue.cli import main

SAMPLE_PHOTOS = Path(__file__).parents[2] / "trivue" / "sample" / "images" / "clean"


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]) -> str:
    """The command's one error line, after checking exit 2 and no traceback."""
    code = main([a.format(tmp=tmp_path, photos=SAMPLE_PHOTOS) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


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
