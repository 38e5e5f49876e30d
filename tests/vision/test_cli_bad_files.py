"""A bad file in a folder of photos is named and skipped: the rest of the folder is still processed.

Found by an evaluator: an empty ``.jpg`` (a camera's interrupted write) among a day's photos stopped
``trivue detect`` and ``trivue judge`` at that file, the photos after it never looked at; and two
photos of one name in two sub-folders wrote one annotated copy over the other.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from trivue.cli import main

BAD = {"empty.jpg": b"", "notes.jpg": b"a text file named .jpg\n"}


def _mixed_folder(root: Path, photo: Path) -> tuple[Path, list[Path], list[Path]]:
    folder = root / "tournée du 3"
    good = [folder / "a.jpg", folder / "rue d'Été" / "b.jpg", folder / "z sub" / "a.jpg"]
    for path in good:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, path)
    bad = []
    for name, data in BAD.items():
        (folder / name).write_bytes(data)
        bad.append(folder / name)
    truncated = folder / "rue d'Été" / "cut.jpg"
    truncated.write_bytes(photo.read_bytes()[:300])
    bad.append(truncated)
    return folder, sorted(good), bad


def test_detect_names_each_bad_file_and_processes_the_rest(tmp_path: Path, litter_val_images: list[Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder, good, bad = _mixed_folder(tmp_path, litter_val_images[0])
    code = main(["detect", str(folder), "--json", "--save", str(tmp_path / "annotated")])
    out, err = capsys.readouterr()
    assert [json.loads(line)["image"] for line in out.splitlines()] == [str(p) for p in good]
    for path in bad:
        assert f"{path}: not a readable image" in err, err
    assert "Traceback" not in err
    assert code == 2  # some input was refused: a script must see it
    annotated = sorted((tmp_path / "annotated").rglob("*.jpg"))
    assert len(annotated) == len(good), annotated  # the two a.jpg do not overwrite each other
    assert all(cv2.imread(str(p)) is not None for p in annotated)


def test_judge_names_each_bad_file_and_judges_the_rest(tmp_path: Path, litter_val_images: list[Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder, good, bad = _mixed_folder(tmp_path, litter_val_images[0])
    code = main(["judge", "--images", str(folder), "--out", str(tmp_path / "judged")])
    out, err = capsys.readouterr()
    for path in bad:
        assert f"{path}: not a readable image" in err, err
    assert f"{len(good)} photos" in out, out
    assert code == 2
    assert len(list((tmp_path / "judged").rglob("*.jpg"))) == len(good)


@pytest.mark.parametrize("command", ["detect", "judge"])
def test_annotated_copies_never_write_over_the_photos_read(tmp_path: Path, litter_val_images: list[Path],
                                                           capsys: pytest.CaptureFixture[str], command: str) -> None:
    """``--save`` (``--out``) naming the photos' own folder drew the boxes over the originals."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "a.jpg"
    shutil.copy(litter_val_images[0], photo)
    before = photo.read_bytes()
    # A photo given by name: its copy's name is its own. A folder: the copies would go into it.
    args = ["detect", str(photo), "--save", str(folder)] if command == "detect" else \
        ["judge", "--images", str(folder), "--out", str(folder)]
    code = main(args)
    err = capsys.readouterr().err
    said = f"would write over the photo {photo}" if command == "detect" else f"inside the photos read ({folder})"
    assert code == 2 and said in err, err
    assert photo.read_bytes() == before and sorted(folder.iterdir()) == [photo]


def test_annotated_copies_never_go_into_the_folder_read(tmp_path: Path, litter_val_images: list[Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A ``.png`` and its ``.jpg`` copy side by side: the next run over the folder read the copy as a
    photo. The folder read, or one inside it, is refused before anything is written."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.imread(str(litter_val_images[0])))
    for save in (folder, folder / "annotated"):
        assert main(["detect", str(folder), "--save", str(save)]) == 2
        assert "inside the photos read" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
