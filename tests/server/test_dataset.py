"""``trivue dataset export`` / ``import``: YOLO and COCO datasets, frozen day splits, and round trips
through Label Studio's and CVAT's export formats; bad files refused, changing nothing."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from server.audit import AuditEntry
from server.config import ServerSettings
from server.db import make_engine
from server.ingest.models import Evidence, Lift
from server.labels.models import DatasetSplit, LabelPhoto
from server.labels.store import Decision, decide, taxonomy
from server.migrate import upgrade_database
from server.web.auth import add_user
from tests.server.edited_rules import COMPOSTABLE, edited_rules
from tests.server.photos import BOTTLE, photo_event, seed_photos
from trivue.cli import main
from vision.rules import SortingRules

PASSWORD = "correct horse battery"
RULES = SortingRules.load()  # the server's default sorting_rules
NAMES = taxonomy(RULES)


@dataclass
class Field:
    settings: ServerSettings
    sessions: sessionmaker[Session]
    events: list[str]
    tmp: Path

    def labels(self) -> dict[str, list[tuple[str, float, float, float, float]]]:
        with self.sessions() as session:
            return {row.event_id: sorted((b["class"], *(round(b[k], 6) for k in ("x1", "y1", "x2", "y2")))
                                         for b in row.boxes if b["state"] != "deleted")
                    for row in session.scalars(select(LabelPhoto))}


@pytest.fixture
def field(make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Field]:
    settings = make_settings(ingest_enabled=False)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC).replace(hour=12)
    # five days of photos, two on the first day (one round: they must share a split)
    batch = [photo_event(1, at=now - timedelta(days=6)), photo_event(2, at=now - timedelta(days=6, hours=1)),
             *(photo_event(3 + i, at=now - timedelta(days=5 - i), boxes=[BOTTLE]) for i in range(4)),
             photo_event(9, at=now - timedelta(days=1), reason="sample")]
    seed_photos(settings, sessions, batch)
    events = [str(e.event_id) for e, _ in batch]
    with sessions() as session:
        add_user(session, "ada", PASSWORD, "admin")
        add_user(session, "ann", PASSWORD, "annotator")
        for event in events[:-1]:  # the last photo stays unlabelled: not exported
            lift = session.scalar(select(Lift).where(Lift.event_id == event))
            decide(session, lift, Decision("done"), "user:ann", RULES)
        lift = session.scalar(select(Lift).where(Lift.event_id == events[0]))
        decide(session, lift, Decision("add", None, "battery", (0.6, 0.1, 0.9, 0.3)), "user:ann", RULES)
        session.commit()
    yield Field(settings, sessions, events, tmp_path)
    engine.dispose()


def export(field: Field, out: Path, *extra: str, user: str = "ada") -> int:
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    return main(["dataset", "export", "--since", since, "--until", datetime.now(UTC).date().isoformat(),
                 "--out", str(out), "--as", user, *extra])


def test_yolo_export_layout_manifest_and_frozen_day_splits(field: Field, capsys: pytest.CaptureFixture[str]) -> None:
    out = field.tmp / "ds1"
    assert export(field, out) == 0
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == list(NAMES) and {"battery", "gas_cylinder"} <= set(data["names"])
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    assert data["path"] == str(out.resolve())
    manifest = json.loads((out / "manifest.json").read_text())
    photos = {p["event_id"]: p for p in manifest["photos"]}
    assert set(photos) == set(field.events[:-1])  # labelled ones only
    first = photos[field.events[0]]
    assert first.keys() >= {"truck_id", "day", "reason", "model_version", "annotator", "retention_until", "split"}
    assert (first["truck_id"], first["reason"], first["annotator"]) == ("benne-01", "contaminated", "user:ann")
    assert first["model_version"] == "trivue-waste:test" and first["retention_until"] > first["day"]
    assert photos[field.events[0]]["split"] == photos[field.events[1]]["split"]  # one round, one split
    assert {p["split"] for p in photos.values()} >= {"train", "test"}
    for event, entry in photos.items():
        assert (out / entry["file"]).read_bytes()[:2] == b"\xff\xd8"
        assert (out / "labels" / entry["split"] / f"{event}.txt").is_file()
    lines = (out / "labels" / first["split"] / f"{field.events[0]}.txt").read_text().splitlines()
    expected = sorted(str(NAMES.index(c)) for c in ("bag", "bottle", "battery"))
    assert sorted(line.split()[0] for line in lines) == expected
    assert f"{NAMES.index('bag')} 0.200000 0.350000 0.200000 0.300000" in lines  # BAG as cx cy w h
    # the splits are stored: labelling the last photo and exporting again keeps every earlier day's split
    with field.sessions() as session:
        before = dict(session.execute(select(DatasetSplit.day, DatasetSplit.split)).all())
        lift = session.scalar(select(Lift).where(Lift.event_id == field.events[-1]))
        decide(session, lift, Decision("done"), "user:ann", RULES)
        session.commit()
    assert export(field, field.tmp / "ds2") == 0
    again = {p["event_id"]: p["split"] for p in json.loads((field.tmp / "ds2" / "manifest.json").read_text())["photos"]}
    assert all(again[e] == p["split"] for e, p in photos.items())
    with field.sessions() as session:
        after = dict(session.execute(select(DatasetSplit.day, DatasetSplit.split)).all())
        audits = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "dataset.export")).all()
    assert before.items() <= after.items() and len(after) == len(before) + 1
    assert audits == ["cli:ada", "cli:ada"]
    assert "7 photos" in capsys.readouterr().out


def test_coco_export(field: Field) -> None:
    out = field.tmp / "coco"
    assert export(field, out, "--format", "coco") == 0
    documents = [json.loads(p.read_text()) for p in sorted((out / "annotations").glob("instances_*.json"))]
    assert sum(len(d["images"]) for d in documents) == 6
    assert documents[0]["categories"][NAMES.index("battery")]["name"] == "battery"
    bag = next(a for d in documents for a in d["annotations"] if a["category_id"] == NAMES.index("bag") + 1)
    assert bag["bbox"] == [32.0, 48.0, 64.0, 72.0]  # BAG on a 320x240 photo


@pytest.mark.parametrize(("user", "message"), [("ann", "'ann' is annotator: this needs the admin role"),
                                               ("nobody", "no enabled account 'nobody'")])
def test_export_needs_an_admin(field: Field, capsys: pytest.CaptureFixture[str], user: str, message: str) -> None:
    assert export(field, field.tmp / "x", user=user) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (field.tmp / "x").exists()


def test_export_never_overwrites(field: Field, capsys: pytest.CaptureFixture[str]) -> None:
    (field.tmp / "full").mkdir()
    (field.tmp / "full" / "keep.txt").write_text("mine")
    assert export(field, field.tmp / "full") == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (field.tmp / "full" / "keep.txt").read_text() == "mine"


# --- Round trips: export, edit as the tools would, import, compare ---------------------------------

def edited_yolo(out: Path) -> dict[str, list[str]]:
    """The exported label files with an annotator's edits: a box deleted, one moved, one added."""
    files = {p.stem: p.read_text().splitlines() for p in sorted(out.glob("labels/*/*.txt"))}
    first = sorted(files)[0]
    files[first] = [*files[first][1:], f"{NAMES.index('gas_cylinder')} 0.500000 0.500000 0.100000 0.200000"]
    second = sorted(files)[1]
    cls, _cx, _cy, w, h = files[second][0].split()
    files[second][0] = f"{cls} 0.400000 0.400000 {w} {h}"
    return files


def as_boxes(files: dict[str, list[str]], names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for event, lines in files.items():
        boxes = []
        for line in lines:
            index, cx, cy, w, h = line.split()
            cx, cy, w, h = float(cx), float(cy), float(w), float(h)
            boxes.append((names[int(index)], *(round(v, 6) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))))
        out[event] = sorted(boxes)
    return out


def cvat_yolo_zip(files: dict[str, list[str]], path: Path) -> None:
    """CVAT's "YOLO 1.1" export: obj.names, obj.data, train.txt, obj_train_data/<image>.txt."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("obj.names", "\n".join(NAMES) + "\n")
        archive.writestr("obj.data", f"classes = {len(NAMES)}\ntrain = data/train.txt\nnames = data/obj.names\n")
        archive.writestr("train.txt", "".join(f"data/obj_train_data/{e}.jpg\n" for e in files))
        for event, lines in files.items():
            archive.writestr(f"obj_train_data/{event}.txt", "".join(f"{line}\n" for line in lines))


def label_studio_yolo_dir(files: dict[str, list[str]], path: Path) -> list[str]:
    """Label Studio's YOLO export: classes.txt in its own (alphabetical) order, labels/, notes.json,
    file names prefixed with the upload hash."""
    names = sorted(NAMES)
    (path / "labels").mkdir(parents=True)
    (path / "classes.txt").write_text("\n".join(names))
    (path / "notes.json").write_text(json.dumps({"categories": [{"id": i, "name": n} for i, n in enumerate(names)]}))
    for event, lines in files.items():
        renumbered = [" ".join([str(names.index(NAMES[int(line.split()[0])])), *line.split()[1:]]) for line in lines]
        (path / "labels" / f"3f2a9c1e-{event}.txt").write_text("\n".join(renumbered))
    return names


def coco_document(files: dict[str, list[str]], first_id: int) -> dict[str, Any]:
    """COCO as both tools write it: pixel boxes; Label Studio counts categories from 0, CVAT from 1."""
    images, annotations = [], []
    for event, lines in files.items():
        images.append({"id": len(images) + 1, "file_name": f"images/{event}.jpg", "width": 320, "height": 240})
        for line in lines:
            index, cx, cy, w, h = (float(v) for v in line.split())
            annotations.append({"id": len(annotations) + 1, "image_id": len(images),
                                "category_id": int(index) + first_id,
                                "bbox": [(cx - w / 2) * 320, (cy - h / 2) * 240, w * 320, h * 240],
                                "area": w * h * 320 * 240, "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + first_id, "name": n} for i, n in enumerate(NAMES)]}


@pytest.mark.parametrize("tool", ["cvat-yolo", "label-studio-yolo", "label-studio-coco", "cvat-coco"])
def test_round_trip_with_label_studio_and_cvat(field: Field, tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = field.tmp / "export"
    assert export(field, out) == 0
    files = edited_yolo(out)
    expected = as_boxes(files, list(NAMES))
    if tool == "cvat-yolo":
        cvat_yolo_zip(files, target := field.tmp / "cvat.zip")
    elif tool == "label-studio-yolo":
        label_studio_yolo_dir(files, target := field.tmp / "ls")
    elif tool == "label-studio-coco":
        (target := field.tmp / "result.json").write_text(json.dumps(coco_document(files, 0)))
    else:
        with zipfile.ZipFile(target := field.tmp / "cvat-coco.zip", "w") as archive:
            archive.writestr("annotations/instances_default.json", json.dumps(coco_document(files, 1)))
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 0, capsys.readouterr().err
    labels = field.labels()
    assert {e: labels[e] for e in expected} == expected  # exactly the edited boxes, photo by photo
    assert f"labels of {len(expected)} photo" in capsys.readouterr().out
    # and exporting again writes the edited files back, byte for byte
    assert export(field, field.tmp / "again") == 0
    again = {p.stem: p.read_text().splitlines() for p in (field.tmp / "again").glob("labels/*/*.txt")}
    assert all(sorted(again[e]) == sorted(lines) for e, lines in files.items())


def bad_zip(lines: dict[str, str], names: tuple[str, ...] | list[str] = NAMES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("obj.names", "\n".join(names))
        for name, text in lines.items():
            archive.writestr(f"obj_train_data/{name}.txt", text)
    return buffer.getvalue()


@pytest.mark.parametrize(("content", "message"), [
    ("yolo-out-of-range", "leaves the photo"),
    ("yolo-unknown-index", "class index 99 is not in the"),
    ("yolo-unknown-class", "unknown class 'unicorn'"),
    ("coco-unknown-class", "unknown class 'unicorn'"),
    ("coco-outside", "leaves the photo"),
    ("unknown-photo", "no photo for lift"),
    ("expired-photo", "expired on"),
    ("not-json", "not JSON"),
])
def test_bad_imports_are_refused_and_change_nothing(field: Field, capsys: pytest.CaptureFixture[str],
                                                    content: str, message: str) -> None:
    first, second = field.events[:2]
    target = field.tmp / ("in.zip" if content.startswith(("yolo", "unknown", "expired")) else "in.json")
    if content == "yolo-out-of-range":  # a good file first: the import is all or nothing
        target.write_bytes(bad_zip({first: "0 0.5 0.5 0.1 0.1\n", second: "0 0.95 0.5 0.2 0.1\n"}))
    elif content == "yolo-unknown-index":
        target.write_bytes(bad_zip({first: "0 0.5 0.5 0.1 0.1\n", second: "99 0.5 0.5 0.1 0.1\n"}))
    elif content == "yolo-unknown-class":  # a class the rules do not have, by name (CVAT's obj.names)
        target.write_bytes(bad_zip({first: "1 0.5 0.5 0.1 0.1\n", second: "0 0.5 0.5 0.1 0.1\n"},
                                   names=["unicorn", *NAMES]))
    elif content == "expired-photo":  # past its retention date, the hourly purge not run yet
        with field.sessions() as session, session.begin():
            session.execute(update(Evidence).where(Evidence.event_id == second)
                            .values(received_at=datetime.now(UTC) - timedelta(days=400)))
        target.write_bytes(bad_zip({first: "0 0.5 0.5 0.1 0.1\n", second: "0 0.5 0.5 0.1 0.1\n"}))
    elif content == "unknown-photo":
        target.write_bytes(bad_zip({first: "0 0.5 0.5 0.1 0.1\n", "00000000-0000-4000-8000-000000000000": ""}))
    elif content == "not-json":
        target.write_text("{not json")
    else:
        document = coco_document({first: ["0 0.5 0.5 0.1 0.1"]}, 1)
        if content == "coco-unknown-class":
            document["categories"][0]["name"] = "unicorn"
        else:
            document["annotations"][0]["bbox"] = [300.0, 10.0, 50.0, 20.0]
        target.write_text(json.dumps(document))
    before = field.labels()
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert field.labels() == before
    with field.sessions() as session:
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action == "labels.import")).all()


def test_a_failed_export_leaves_nothing(field: Field, capsys: pytest.CaptureFixture[str]) -> None:
    with field.sessions() as session:  # one photo file gone from disk (a disk fault, a hand)
        path = session.scalar(select(Evidence.path).where(Evidence.event_id == field.events[3]))
    (field.settings.evidence_path / path).unlink()
    assert export(field, field.tmp / "broken") == 2
    err = capsys.readouterr().err
    assert "No such file" in err and len(err.strip().splitlines()) == 1
    assert not (field.tmp / "broken").exists() and not list(field.tmp.glob(".broken*"))
    with field.sessions() as session:  # the new days' splits were not kept either
        assert session.scalars(select(DatasetSplit)).all() == []
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action == "dataset.export")).all()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("photo.jpg", b"\xff\xd8\xff\xe0 not an export", "photo.jpg: not a readable zip or folder, nor a COCO .json"),
    ("empty.csv", b"", "empty.csv: not a readable zip or folder"),
    ("garbage.csv.gz", b"\x1f\x8b garbage", "garbage.csv.gz: not a readable zip or folder"),
    ("corrupt.zip", b"PK\x03\x04 truncated", "corrupt.zip: not a readable zip or folder"),
    ("crc.zip", None, "crc.zip: not a readable zip (Bad CRC-32"),
    ("nonames.zip", None, "nonames.zip: no class names: a YOLO export holds obj.names"),
])
def test_a_file_that_is_not_an_export_is_named(field: Field, capsys: pytest.CaptureFixture[str], name: str,
                                               content: bytes | None, message: str) -> None:
    target = field.tmp / name
    if name == "crc.zip":  # a readable directory over a damaged member
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("obj.names", "\n".join(NAMES))
        content = buffer.getvalue().replace(NAMES[0].encode(), NAMES[0].upper().encode(), 1)
    elif name == "nonames.zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"{field.events[0]}.txt", "0 0.5 0.5 0.1 0.1\n")
        content = buffer.getvalue()
    assert content is not None
    target.write_bytes(content)
    before = field.labels()
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert field.labels() == before


def test_export_and_import_follow_the_servers_rules_file(field: Field, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset's classes are the server's sorting_rules (the trucks' file), a class the deployment
    added included: the packaged rules would refuse its boxes at import and leave it out of data.yaml."""
    first = field.events[0]
    cvat = field.tmp / "cvat.zip"
    own = SortingRules.load(edited_rules(field.tmp / "regles"))
    names = list(own.spec.classes)
    cvat.write_bytes(bad_zip({first: f"{names.index(COMPOSTABLE)} 0.5 0.5 0.2 0.2\n"}, names=names))
    assert main(["dataset", "import", str(cvat), "--as", "ann"]) == 2  # the packaged rules know no such class
    assert f"unknown class '{COMPOSTABLE}'" in capsys.readouterr().err
    monkeypatch.setenv("TRIVUE_SORTING_RULES", own.source)
    assert main(["dataset", "import", str(cvat), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[first] == [(COMPOSTABLE, 0.4, 0.4, 0.6, 0.6)]
    assert export(field, field.tmp / "own") == 0
    data = yaml.safe_load((field.tmp / "own" / "data.yaml").read_text())
    assert data["names"] == names and data["nc"] == len(NAMES) + 1
    manifest = json.loads((field.tmp / "own" / "manifest.json").read_text())
    split = next(p["split"] for p in manifest["photos"] if p["event_id"] == first)
    assert (field.tmp / "own" / "labels" / split / f"{first}.txt").read_text().split()[0] == str(len(NAMES))


@pytest.mark.parametrize("command", ["export", "import"])
def test_a_bad_rules_file_stops_the_command_naming_the_setting(field: Field, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    broken = field.tmp / "broken.yaml"
    broken.write_text("version: 1\nname: x\nclasses: {}\nstreams: {recyclables: {label: Bac, accepted: [bottle]}}\n")
    monkeypatch.setenv("TRIVUE_SORTING_RULES", str(broken))
    if command == "export":
        assert export(field, field.tmp / "never") == 2
    else:
        assert main(["dataset", "import", str(field.tmp / "x.zip"), "--as", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trivue dataset: error: sorting_rules: ") and str(broken) in err, err
    assert "not declared in 'classes'" in err and len(err.splitlines()) == 1
    assert not (field.tmp / "never").exists()


def test_a_box_of_a_class_the_rules_no_longer_have_stops_the_export_naming_it(
        field: Field, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Labelled under a rules file with a class of its own, exported after the class left the file
    (renamed, or the file switched back): before, a ValueError traceback and no word of which photo."""
    first = field.events[0]
    own = SortingRules.load(edited_rules(field.tmp / "regles"))
    cvat = field.tmp / "cvat.zip"
    names = list(own.spec.classes)
    cvat.write_bytes(bad_zip({first: f"{names.index(COMPOSTABLE)} 0.5 0.5 0.2 0.2\n"}, names=names))
    monkeypatch.setenv("TRIVUE_SORTING_RULES", own.source)
    assert main(["dataset", "import", str(cvat), "--as", "ann"]) == 0, capsys.readouterr().err
    monkeypatch.delenv("TRIVUE_SORTING_RULES")
    capsys.readouterr()
    with field.sessions() as session:
        splits_before = session.scalars(select(DatasetSplit.day)).all()
    assert export(field, field.tmp / "never") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert first in err and f"class '{COMPOSTABLE}'" in err and "sorting_rules" in err, err
    assert not (field.tmp / "never").exists()
    with field.sessions() as session:
        assert session.scalars(select(DatasetSplit.day)).all() == splits_before
