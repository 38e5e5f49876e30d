"""``trivue dataset`` as the field loop really uses it: labels coming back over a person's decision,
a deployment importing its own export, and two exports at once."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from server.ingest.models import Lift
from server.labels import dataset
from server.labels.models import DatasetSplit, LabelPhoto
from server.labels.store import Decision, decide
from tests.server.test_dataset import RULES, Field, cvat_yolo_zip, edited_yolo, export, field  # noqa: F401  (fixture)
from trivue.cli import main


def status(field: Field, event: str) -> str:  # noqa: F811
    with field.sessions() as session:
        return session.get(LabelPhoto, event).status


def mark_unusable(field: Field, event: str) -> None:  # noqa: F811
    with field.sessions() as session:
        lift = session.scalar(select(Lift).where(Lift.event_id == event))
        decide(session, lift, Decision("unusable"), "user:bea", RULES)
        session.commit()


def test_an_import_keeps_a_photo_a_person_marked_unusable_and_says_so(
        field: Field, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """Exported, labelled in CVAT meanwhile; on the dashboard a person found the photo unusable (dark,
    a hand in front). The import turned it back to done, and it went into training again."""
    assert export(field, field.tmp / "lot") == 0
    files = edited_yolo(field.tmp / "lot")
    cvat_yolo_zip(files, field.tmp / "cvat.zip")
    unusable = sorted(files)[0]
    mark_unusable(field, unusable)
    before = field.labels()[unusable]
    capsys.readouterr()
    assert main(["dataset", "import", str(field.tmp / "cvat.zip"), "--as", "ann"]) == 0
    out = capsys.readouterr().out
    assert status(field, unusable) == "unusable" and field.labels()[unusable] == before
    assert f"labels of {len(files) - 1} photos imported" in out
    assert f"1 photo left unusable, as a person marked them, their labels not imported: {unusable}" in out
    assert "--relabel-unusable" in out
    assert all(status(field, event) == "done" for event in files if event != unusable)
    # asked for explicitly, the import labels it: the photo is done with the tool's boxes
    assert main(["dataset", "import", str(field.tmp / "cvat.zip"), "--as", "ann", "--relabel-unusable"]) == 0
    assert f"labels of {len(files)} photos imported" in capsys.readouterr().out
    assert status(field, unusable) == "done" and field.labels()[unusable] != before


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_a_deployment_imports_its_own_export(field: Field, capsys: pytest.CaptureFixture[str], fmt: str) -> None:  # noqa: F811
    """Labels done offline in CVAT on the export's own files, or moved from a test server to
    production: the COCO export's manifest.json was read as a COCO file and refused the import."""
    out = field.tmp / "lot"
    assert export(field, out, "--format", fmt) == 0
    before = field.labels()
    with field.sessions() as session:  # production has not labelled these photos yet
        session.query(LabelPhoto).delete()
        session.commit()
    capsys.readouterr()
    assert main(["dataset", "import", str(out), "--as", "ann"]) == 0, capsys.readouterr().err
    assert "labels of 6 photos imported" in capsys.readouterr().out
    assert field.labels() == before
    assert main(["dataset", "import", str(out / "manifest.json"), "--as", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the manifest of a `trivue dataset export`" in err, err
    assert "pass the export's folder" in err


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_two_exports_at_once_both_succeed_with_the_same_frozen_splits(
        field: Field, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str) -> None:  # noqa: F811
    """A month's export still copying photos while another one, of the last days only, runs and
    stores those days' splits first (it would give them other splits: it meets them first). Before,
    the first export's commit failed on the day's key with an IntegrityError traceback and left a
    folder whose splits disagreed with the frozen ones."""
    with field.sessions() as session:
        days = sorted(set(session.scalars(select(Lift.day).where(Lift.event_id.in_(field.events[:-1])))))
    assert len(days) == 5
    until = days[-1].isoformat()
    real, raced = dataset._write_files, []

    def meanwhile(*args: object, **kwargs: object) -> None:
        if not raced:  # the other export runs, and commits, while this one copies its photos
            raced.append(None)
            raced[0] = main(["dataset", "export", "--since", days[1].isoformat(), "--until", until,
                             "--out", str(field.tmp / "last-days"), "--as", "ada", "--format", fmt])
        real(*args, **kwargs)

    monkeypatch.setattr(dataset, "_write_files", meanwhile)
    assert main(["dataset", "export", "--since", days[0].isoformat(), "--until", until,
                 "--out", str(field.tmp / "month"), "--as", "ada", "--format", fmt]) == 0, capsys.readouterr().err
    assert raced == [0]
    with field.sessions() as session:
        frozen = {d.isoformat(): s for d, s in session.execute(select(DatasetSplit.day, DatasetSplit.split))}
    assert len(frozen) == 5
    for folder in ("month", "last-days"):
        photos = json.loads((field.tmp / folder / "manifest.json").read_text())["photos"]
        assert {p["day"]: p["split"] for p in photos}.items() <= frozen.items(), folder
        assert all((field.tmp / folder / p["file"]).is_file() for p in photos)
        for split in ("train", "val", "test"):
            listed = {p["event_id"] for p in photos if p["split"] == split}
            if fmt == "yolo":
                labelled = {f.stem for f in (field.tmp / folder / "labels" / split).glob("*.txt")}
            else:
                coco = json.loads((field.tmp / folder / "annotations" / f"instances_{split}.json").read_text())
                labelled = {image["file_name"].removesuffix(".jpg") for image in coco["images"]}
            assert labelled == listed, (folder, split)
    moved = json.loads((field.tmp / "month" / "manifest.json").read_text())["photos"]
    assert {p["split"] for p in moved} == {"train", "test"}  # the month's own plan had a val day: followed theirs
