"""``trivue evaluate --compare`` on a field export whose test photos are not all there: photos deleted
past their retention date, lost in a copy, truncated, and a split without a labelled box."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from base.paths import MODELS_DIR
from tests.field_fixture import build_field_dataset, taxonomy
from trivue.cli import main

SHIPPED = MODELS_DIR / "trivue-waste.onnx"
TESTS = 6


@pytest.fixture
def field(shared_dir: Path, tmp_path: Path) -> Path:
    if not SHIPPED.is_file():
        pytest.skip("the shipped model is absent")
    return build_field_dataset(tmp_path / "terrain", shared_dir,
                               counts={"hopper-bags": {"train": 1, "val": 1, "test": TESTS}})


def compare(capsys: pytest.CaptureFixture, field: Path, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", "--compare", str(SHIPPED), str(SHIPPED), "--data", str(field), *args])
    out, err = capsys.readouterr()
    return code, out, err


def split_photos(field: Path) -> list[Path]:
    return sorted((field / "images" / "test").glob("*.jpg"))


def expire(field: Path, photos: list[Path]) -> None:
    """What privacy.md asks of an export's folder: a photo past its retention date is deleted."""
    manifest = json.loads((field / "manifest.json").read_text())
    gone = {photo.stem for photo in photos}
    for entry in manifest["photos"]:
        if Path(entry["file"]).stem in gone:
            entry["retention_until"] = (date.today() - timedelta(days=1)).isoformat()
    (field / "manifest.json").write_text(json.dumps(manifest))
    for photo in photos:
        photo.unlink()


def test_missing_test_photos_are_counted_with_their_reason(field: Path, capsys: pytest.CaptureFixture) -> None:
    photos = split_photos(field)
    expire(field, photos[:1])
    photos[1].unlink()  # lost in a copy, still within its retention
    code, out, err = compare(capsys, field)
    assert code in (0, 3) and err == "", err
    assert out.lstrip().startswith(f"field test split of {field}: {TESTS - 2} photos (of {TESTS} in manifest.json) of ")
    assert (f"note: {TESTS - 2} of the {TESTS} test photos of manifest.json read, 2 left out: 1 past their "
            "retention date (retention_until in manifest.json), deleted from the folder; 1 absent from images/test "
            f"though not past their retention date (deleted or not copied); the figures rest on the {TESTS - 2} "
            "photos read") in out

    photos[2].write_bytes(photos[2].read_bytes()[:200])  # a truncated copy: left out, said, not fatal
    code, out, err = compare(capsys, field, "--json")
    result = json.loads(out)
    assert result["test_photos"] == {"expected": TESTS, "read": TESTS - 3, "past_retention_read": 0,
                                     "left_out": {"expired": 1, "absent": 1, "unreadable": 1}}
    assert result["images"] == TESTS - 3 and "1 not readable images" in result["notes"][0]


def test_all_test_photos_there_says_nothing_more(field: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = compare(capsys, field, "--json")
    result = json.loads(out)
    assert code in (0, 3) and result["images"] == TESTS
    assert result["test_photos"] == {"expected": TESTS, "read": TESTS, "left_out": {}, "past_retention_read": 0}
    assert not any("manifest.json" in note for note in result["notes"])


def test_too_few_test_photos_left_is_refused(field: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = split_photos(field)
    expire(field, photos[:4])
    code, out, err = compare(capsys, field)
    assert code == 2 and out == ""
    assert re.fullmatch(
        rf"trivue evaluate: error: {re.escape(str(field))}: 2 of the 6 test photos of manifest.json read, 4 left "
        r"out: 4 past their retention date \(retention_until in manifest.json\), deleted from the folder: fewer than "
        r"min_test_share 0.5 of them remain, .*restore the photos from a backup, or compare on a newer export.*\n", err)
    (tmp_path / "gates.yaml").write_text("min_test_share: 0.3\n")  # the deployment's own rule
    code, out, _ = compare(capsys, field, "--gates", str(tmp_path / "gates.yaml"))
    assert code in (0, 3) and "photos (of 6 in manifest.json)" in out
    for photo in photos[4:]:
        photo.unlink()
    code, out, err = compare(capsys, field, "--gates", str(tmp_path / "gates.yaml"))
    assert code == 2 and "0 of the 6 test photos of manifest.json read, 6 left out: 4 past" in err


def test_a_test_split_without_a_labelled_box_says_what_to_do(field: Path, capsys: pytest.CaptureFixture) -> None:
    labels = sorted((field / "labels" / "test").glob("*.txt"))
    for label in labels:
        label.write_text("")
    code, out, err = compare(capsys, field)
    assert code == 2 and out == ""
    assert err == (f"trivue evaluate: error: {field}: the {TESTS} test photos read hold no labelled box at all "
                   "(labels/test holds no box): there is nothing to measure the models on. Label the boxes of the "
                   "test days' photos on the Annotation page of the dashboard (or in Label Studio / CVAT and "
                   "`trivue dataset import`), then `trivue dataset export` again\n")
    battery = taxonomy().index("battery")  # a class the field map leaves out of the models
    labels[0].write_text(f"{battery} 0.5 0.5 0.2 0.2\n{battery} 0.3 0.3 0.1 0.1\n")
    code, _, err = compare(capsys, field)
    assert code == 2 and "hold 2 labelled boxes, none of a class the models have (field classes battery 2: " in err
    assert "field-map.yaml maps them to null)" in err
