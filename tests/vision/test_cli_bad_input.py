"""``trivue detect`` refuses bad input in one line, exit 2, before the model loads or a file is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivue.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "-3", "{tmp}/photo.jpg"], "--threads -3: expected 0 (all cores) or more"),
        # It said "conf and iou must be within 0..1, got conf=2.0, iou=0.45": no option named.
        (["--conf", "2", "{tmp}/photo.jpg"], "--conf 2: expected a threshold from 0 to 1"),
        (["--iou", "-0.5", "{tmp}/photo.jpg"], "--iou -0.5: expected a threshold from 0 to 1"),
        (["--conf", "nan", "{tmp}/photo.jpg"], "--conf nan: expected a threshold from 0 to 1"),
        (["{tmp}/empty"], "no images (.bmp, .jpeg, .jpg, .png, .webp) in {tmp}/empty"),
        # an empty folder among good inputs: refused before the first image is printed
        (["{tmp}/photo.jpg", "{tmp}/empty"], "no images (.bmp, .jpeg, .jpg, .png, .webp) in {tmp}/empty"),
        (["--save", "{tmp}/a-file", "{tmp}/photo.jpg"], "--save {tmp}/a-file: cannot be a folder: File exists"),
        (["--save", "{tmp}/a-file/sub", "{tmp}/photo.jpg"], "--save {tmp}/a-file/sub: cannot be a folder: Not a dir"),
    ],
)
def test_detect_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                              message: str) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"never read: the command stops before")
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    code = main(["detect", *(a.format(tmp=tmp_path) for a in args), "--model", str(tmp_path / "absent.onnx")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("trivue detect: error: ") and message.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
