"""Every error the settings alone can show is said before the model loads (``edge.preflight``): a
misspelt ``gps.source`` was reported only after the model's load and INT8 self-check (seconds on a
truck computer), behind their log lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import edge.app
from trivue.cli import main
from vision.rules import DEFAULT_RULES


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def model_loaded(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(edge.app, "choose_model", model_loaded)
    monkeypatch.setattr(edge.app, "Detector", model_loaded)
    (tmp_path / "bursts").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"not loaded")
    (tmp_path / "bad.gpx").write_text("<gpx><trk></trk></gpx>")
    (tmp_path / "file").write_text("a file")
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["streams"] = {"glass": rules["streams"]["glass"]}
    (tmp_path / "glass-only.yaml").write_text(yaml.safe_dump(rules))
    base = {"truck_id": "T-pre", "source": str(tmp_path / "bursts"), "model": str(tmp_path / "model.onnx"),
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "evidence": {"dir": str(tmp_path / "ev")}}

    def write(**change: object) -> Path:
        path = tmp_path / "truck.yaml"
        path.write_text(yaml.safe_dump({**base, **change}), encoding="utf-8")
        return path

    return write


@pytest.mark.parametrize(("change", "message"), [
    ({"gps": {"source": "gps.nmea"}}, "gps.source: 'gps.nmea': no such file to replay"),
    ({"gps": {"source": "/tmp/ttyGPS"}}, "not fixed:LAT,LON, an .nmea/.gpx file, gpsd://host, nor a serial device"),
    ({"gps": {"source": "fixed:91,0"}}, "latitude is -90..90"),
    ({"gps": {"source": "fixed:47.9"}}, "expected fixed:LAT,LON"),
    ({"gps": {"source": "{tmp}/bad.gpx"}}, "no track points"),
    ({"model": "{tmp}/missing.onnx"}, "missing.onnx: model file not found"),
    ({"rules": "{tmp}/missing.yaml"}, "missing.yaml"),
    ({"evidence": {"dir": "{tmp}/file"}}, "evidence.dir: "),
    ({"source": "{tmp}/none.mp4"}, "source: "),
])
def test_errors_known_from_the_settings_stop_start_up_before_the_model_loads(config, tmp_path, capsys, change,
                                                                              message) -> None:
    change = yaml.safe_load(yaml.safe_dump(change).replace("{tmp}", str(tmp_path)))
    assert main(["edge", "--config", str(config(**change)), "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trivue edge: error: ") and message in err, err


def test_a_stream_the_rules_file_lacks_stops_start_up_before_the_model_loads(config, tmp_path, capsys) -> None:
    path = config(rules=str(tmp_path / "glass-only.yaml"), stream="recyclables")
    assert main(["edge", "--config", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert "glass-only.yaml: no rules for stream 'recyclables'" in err, err
