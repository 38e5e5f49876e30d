"""``trivue dataset import`` of files a tool mangled or a person wrote by hand: each refused in one line
naming what is wrong (exit code 2, no label changed), or read with every class id where it belongs."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from server.audit import AuditEntry
from server.labels.store import MAX_BOXES
from tests.server.test_dataset import NAMES, Field, coco_document, field  # noqa: F401  (fixture)
from trivue.cli import main


def refused(field: Field, target: Path, capsys: pytest.CaptureFixture[str], message: str) -> None:  # noqa: F811
    before, audited = field.labels(), imports(field)
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert field.labels() == before and imports(field) == audited


def imports(field: Field) -> int:  # noqa: F811
    with field.sessions() as session:
        return len(session.scalars(select(AuditEntry).where(AuditEntry.action == "labels.import")).all())


def a_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def one_box(field: Field) -> dict[str, Any]:  # noqa: F811
    return coco_document({field.events[0]: ["0 0.5 0.5 0.1 0.1"]}, 1)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["images"][0].update(width=0), "width and height must be positive numbers (pixels), got 0 x 240"),
    (lambda d: d["images"][0].update(height=10 ** 400), "width and height must be positive numbers"),
    (lambda d: d["images"][0].pop("file_name"), "image 1: no file_name"),
    (lambda d: d.update(annotations={"1": {}}), "'annotations' is not a list of objects"),
    (lambda d: d.update(annotations=["bag"]), "'annotations' is not a list of objects"),
    (lambda d: d["annotations"][0].update(image_id=[1]), "annotation 1: unknown image [1]"),
    (lambda d: d["annotations"][0].update(bbox="1234"), "annotation 1: bbox must be [x, y, w, h] in pixels"),
], ids=["zero-width", "huge-height", "no-file-name", "annotations-object", "annotation-string", "list-image-id",
        "string-bbox"])
def test_a_mangled_coco_file_is_named_not_a_traceback(field: Field, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                                      change: Any, message: str) -> None:
    document = one_box(field)
    change(document)
    (target := field.tmp / "result.json").write_text(json.dumps(document))
    refused(field, target, capsys, message)


def test_a_photo_labelled_twice_in_one_import_is_refused(field: Field,  # noqa: F811
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the file listed last replaced the other, so a photo's boxes could silently vanish.
    first = field.events[0]
    names = "\n".join(NAMES)
    yolo = a_zip(field.tmp / "two.zip", {"obj.names": names, f"train/{first}.txt": "0 0.5 0.5 0.1 0.1\n",
                                         f"zz/3f2a9c1e-{first}.txt": ""})
    refused(field, yolo, capsys, f"photo {first} is labelled twice in the import (also in train/{first}.txt)")
    document = one_box(field)
    document["images"].append({**document["images"][0], "id": 2})  # the same photo, no box
    (coco := field.tmp / "twice.json").write_text(json.dumps(document))
    refused(field, coco, capsys, f"photo {first} is labelled twice")
    both = a_zip(field.tmp / "docs.zip", {"instances_train.json": json.dumps(one_box(field)),
                                          "instances_default.json": json.dumps(coco_document({first: []}, 1))})
    refused(field, both, capsys, f"photo {first} is labelled twice")


def test_class_ids_follow_the_names_not_the_file_order(field: Field,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = field.events[0]
    # data.yaml's {id: name} written from the last id down: id 1 is still "bottle"
    names = dict(reversed(list(enumerate(NAMES))))
    target = a_zip(field.tmp / "yaml.zip", {"data.yaml": yaml.safe_dump({"names": names}, sort_keys=False),
                                            f"labels/{first}.txt": f"{NAMES.index('bottle')} 0.5 0.5 0.2 0.2\n"})
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[first] == [("bottle", 0.4, 0.4, 0.6, 0.6)]
    # A blank line inside obj.names would move every class after it by one: refused, naming the line.
    blank = a_zip(field.tmp / "blank.zip", {"obj.names": "bag\n\nbottle\ncan\n", f"{first}.txt": "2 0.5 0.5 0.2 0.2\n"})
    refused(field, blank, capsys, "obj.names: line 2 is empty")
    for bad in ("names: bag", "names: {0: bag, 2: bottle}"):
        text = a_zip(field.tmp / "names.zip", {"data.yaml": bad, f"{first}.txt": "0 0.5 0.5 0.2 0.2\n"})
        refused(field, text, capsys, "data.yaml: 'names'")


def test_an_import_holds_at_most_the_boxes_a_photo_may_hold(field: Field,  # noqa: F811
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    lines = "0 0.5 0.5 0.1 0.1\n" * (MAX_BOXES + 1)
    target = a_zip(field.tmp / "many.zip", {"obj.names": "\n".join(NAMES), f"{field.events[0]}.txt": lines})
    refused(field, target, capsys, f"{MAX_BOXES + 1} boxes on one photo, at most {MAX_BOXES}")


def test_what_a_zip_unpacks_to_is_bounded_photos_aside(field: Field, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A zip's limit was on its packed size only: a few kilobytes of zip could unpack to gigabytes.
    monkeypatch.setattr("server.labels.interop.MAX_FILE_BYTES", 4096)
    names = "\n".join(NAMES)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("obj.names", names)
        archive.writestr(f"{field.events[0]}.txt", "0 0.5 0.5 0.2 0.2\n" + " " * 8192)
    (target := field.tmp / "bomb.zip").write_bytes(bomb.getvalue())
    refused(field, target, capsys, "bomb.zip: its label files unpack to more than an import may hold (4096 bytes)")
    # The photos a Label Studio export carries beside the labels are not read, so they do not count.
    with_photos = io.BytesIO()
    with zipfile.ZipFile(with_photos, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("classes.txt", names)
        archive.writestr(f"labels/{field.events[0]}.txt", "0 0.5 0.5 0.2 0.2\n")
        archive.writestr(f"images/{field.events[0]}.jpg", b"\0" * 8192)
    (target := field.tmp / "ls.zip").write_bytes(with_photos.getvalue())
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[field.events[0]] == [("bag", 0.4, 0.4, 0.6, 0.6)]


def test_a_zip_or_folder_with_its_photos_is_bounded_by_its_label_files_only(
        field: Field, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """CVAT ("save images") and Label Studio exports carry the photos: a month of them weighs more than
    the limit, which is on the label files. Before, such a zip was read whole into memory, then
    refused for its size, photos included."""
    monkeypatch.setattr("server.labels.interop.MAX_FILE_BYTES", 4096)
    event = field.events[0]
    photo = bytes(range(256)) * 64  # 16 KiB that do not compress, as JPEG bytes do not
    with zipfile.ZipFile(target := field.tmp / "cvat-with-images.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("obj.names", "\n".join(NAMES))
        archive.writestr(f"obj_train_data/{event}.txt", "0 0.5 0.5 0.2 0.2\n")
        archive.writestr(f"obj_train_data/{event}.jpg", photo)
    assert target.stat().st_size > 4096
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[event] == [("bag", 0.4, 0.4, 0.6, 0.6)]
    # a folder's label files are bounded as a zip's are; its photos do not count either
    folder = field.tmp / "ls-folder"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / f"{event}.jpg").write_bytes(photo)
    (folder / "classes.txt").write_text("\n".join(NAMES))
    (folder / f"{event}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    assert main(["dataset", "import", str(folder), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[event] == [("bottle", 0.4, 0.4, 0.6, 0.6)]
    (folder / "notes.json").write_text(" " * 8192)
    refused(field, folder, capsys, "ls-folder: its label files hold more than an import may hold (4096 bytes)")
    # a bare COCO file over the limit is refused before it is read
    (big := field.tmp / "big.json").write_text(" " * 8192)
    refused(field, big, capsys, "big.json: 8192 bytes is more than an import may hold (4096)")
