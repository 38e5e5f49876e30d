"""``trivue evaluate`` on a plain data.yaml: a bad label row is one line naming the file, line and value.

A merged mapping's labels are checked by the merge (``training.datasets.rewrite_rows``); a plain
data.yaml's were read as they came, and a class id beyond the names or a short or non-numeric row
ended in an IndexError or ValueError traceback, minutes into the evaluation for a large split.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trivue.cli import main

NAMES = "[bag, bottle, can, carton, cup, polystyrene, film, glass, electronics, medical]"


def plain_data(tmp_path: Path, rows: str) -> Path:
    """A plain Ultralytics data.yaml with the shipped model's classes: one good photo, then one bad."""
    for name in ("a", "b"):
        (tmp_path / "images" / "val").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "val").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "images" / "val" / f"{name}.jpg"), np.full((64, 64, 3), 120, np.uint8))
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-8")
    (tmp_path / "labels" / "val" / "b.txt").write_text(rows, encoding="utf-8")
    (tmp_path / "data.yaml").write_text(f"names: {NAMES}\nval: images/val\n", encoding="utf-8")
    return tmp_path / "data.yaml"


@pytest.mark.parametrize("lifts", [False, True], ids=["evaluate", "lifts"])
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1 0.5 0.5 0.2 0.2\n12 0.5 0.5 0.2 0.2\n", "b.txt:2: class id 12 unknown (the data has 10 names)"),
        ("0 0.5 0.5 0.2 0.2\n-1 0.5 0.5 0.2 0.2\n", "b.txt:2: class id -1 unknown (the data has 10 names)"),
        ("\n0 0.5 0.5 0.2\n", "b.txt:2: expected 5 numbers (class cx cy w h), got 4"),
        ("bag 0.5 0.5 0.2 0.2\n", "b.txt:1: not a 'class cx cy w h' row: 'bag 0.5 0.5 0.2 0.2'"),
        ("1.5 0.5 0.5 0.2 0.2\n", "b.txt:1: not a 'class cx cy w h' row: '1.5 0.5 0.5 0.2 0.2'"),
        ("0 0.5 0.5 0.2 0.2 0.3 0.1\n", "b.txt:1: expected 5 numbers (class cx cy w h), got 7"),
    ],
    ids=["class-beyond-names", "negative-class", "short-row", "class-name", "fractional-class", "segment"],
)
def test_a_bad_label_row_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, message: str,
                                     lifts: bool) -> None:
    if lifts:
        pytest.importorskip("albumentations")
    data = plain_data(tmp_path, rows)
    code = main(["evaluate", "--data", str(data), *(["--lifts"] if lifts else [])])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err[-2000:]
    assert err.startswith("trivue evaluate: error: ") and str(tmp_path / "labels" / "val") in err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_integral_class_ids_written_as_floats_still_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Some exporters write ``1.0``; Ultralytics reads it as class 1, so does evaluate."""
    data = plain_data(tmp_path, "1.0 0.5 0.5 0.2 0.2\n")
    assert main(["evaluate", "--data", str(data), "--json"]) == 0
    assert '"images": 2' in capsys.readouterr().out
