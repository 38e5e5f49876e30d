"""``trivue simulate --evidence-photos DIR``: a photo that is not a JPEG is refused before the first
lift is published, naming the file. It was read only when a lift first drew it, half-way through
the run: a traceback saying "not a JPEG file" (which of the folder's photos?) with lifts already
published and the rest lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from base.paths import SAMPLE_STREETS
from trivue.cli import main
from trivue.sim.contents import EvidencePhotos

SAMPLE_PHOTOS = Path(__file__).parents[2] / "trivue" / "sample" / "images" / "contaminated"


def folder_with_a_bad_photo(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    shutil.copytree(SAMPLE_PHOTOS, photos)
    (photos / "renamed.jpg").write_bytes(b"\x89PNG\r\n\x1a\n a PNG saved under a .jpg name")
    return photos


def test_a_photo_that_is_not_a_jpeg_is_named_when_the_folder_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"renamed\.jpg: not a JPEG file"):
        EvidencePhotos(sorted(folder_with_a_bad_photo(tmp_path).glob("*")))


def test_a_drawn_photo_carries_its_size() -> None:
    import random

    photos = EvidencePhotos(sorted(SAMPLE_PHOTOS.glob("*")))
    rng = random.Random(0)
    drawn = {photos.pick(rng)[1] for _ in range(50)}
    assert drawn and all(e.width > 0 and e.height > 0 for e in drawn)


def test_simulate_refuses_the_folder_before_publishing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    photos = folder_with_a_bad_photo(tmp_path)
    # Port 1 has no broker: the photos must be refused before the simulator reaches for one.
    code = main(["simulate", "--streets", str(SAMPLE_STREETS), "--round-km", "0.2", "--broker",
                 "mqtt://127.0.0.1:1", "--evidence-photos", str(photos)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"trivue simulate: error: --evidence-photos {photos}: renamed.jpg: "
                                            "not a JPEG file"), err
