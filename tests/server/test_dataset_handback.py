"""Labels coming back from Label Studio or CVAT answer an export: a COCO image the tool turned
(EXIF orientation) is refused, and a photo a person changed in the dashboard after the export is
left as it is and listed, unless ``--force``."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import select

from server.ingest.models import Lift
from server.labels.models import LabelPhoto
from server.labels.store import Decision, decide
from tests.server.test_dataset import (  # noqa: F401  (fixture)
    RULES,
    Field,
    coco_document,
    cvat_yolo_zip,
    edited_yolo,
    export,
    field,
)
from trivue.cli import main


def move_first_box(field: Field, event: str, who: str = "user:bea") -> None:  # noqa: F811
    with field.sessions() as session:
        lift = session.scalar(select(Lift).where(Lift.event_id == event))
        decide(session, lift, Decision("move", 1, None, (0.05, 0.05, 0.15, 0.15)), who, RULES)
        session.commit()


def test_a_coco_image_the_tool_turned_is_refused_naming_both_sizes(field: Field,  # noqa: F811
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A tool that shows photos upright by their EXIF orientation writes the turned image's width and
    height (240 x 320 for a 320 x 240 photo) and its boxes in that frame: imported as fractions of
    the stored photo, every box landed elsewhere."""
    first, second = field.events[:2]
    document = coco_document({first: ["0 0.5 0.5 0.1 0.1"], second: ["0 0.25 0.5 0.1 0.2"]}, 1)
    turned = document["images"][1]
    turned["width"], turned["height"] = turned["height"], turned["width"]
    (target := field.tmp / "result.json").write_text(json.dumps(document))
    before = field.labels()
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"image 2 (images/{second}.jpg)" in err, err
    assert "the tool's image is 240 x 320 pixels, the stored photo 320 x 240" in err
    assert "width and height swapped" in err
    assert field.labels() == before  # all or nothing: the first photo's good labels are not imported either
    # A copy the tool scaled alike (640 x 480) has its boxes at the same place: imported.
    for image in document["images"]:
        image["width"], image["height"] = 640, 480
    for annotation in document["annotations"]:
        annotation["bbox"] = [v * 2 for v in annotation["bbox"]]
    target.write_text(json.dumps(document))
    assert main(["dataset", "import", str(target), "--as", "ann"]) == 0, capsys.readouterr().err
    assert field.labels()[second] == [("bag", 0.2, 0.4, 0.3, 0.6)]


def test_a_photo_a_person_changed_after_the_export_is_left_and_listed(field: Field,  # noqa: F811
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Exported, labelled in CVAT; meanwhile a person moved a box on the dashboard. The import replaced
    the photo's boxes with the tool's, and the person's move was gone without a word."""
    assert export(field, field.tmp / "lot") == 0
    files = edited_yolo(field.tmp / "lot")
    cvat_yolo_zip(files, zipped := field.tmp / "cvat.zip")
    changed = sorted(files)[2]
    move_first_box(field, changed)
    before = field.labels()[changed]
    capsys.readouterr()
    assert main(["dataset", "import", str(zipped), "--as", "ann"]) == 0
    out = capsys.readouterr().out
    assert field.labels()[changed] == before  # the person's move stands
    assert f"labels of {len(files) - 1} photos imported" in out
    assert f"1 photo left as they are, changed in the dashboard after the export this file answers, " \
           f"their labels not imported: {changed} (bea: move at " in out and "--force" in out
    with field.sessions() as session:
        assert session.get(LabelPhoto, changed).annotator == "user:bea"
        assert all(session.get(LabelPhoto, e).annotator == "cli:ann" for e in files if e != changed)
    # Imported again: the first import's own changes are no person's decision, the move still is.
    assert main(["dataset", "import", str(zipped), "--as", "ann"]) == 0
    assert f"labels of {len(files) - 1} photos imported" in capsys.readouterr().out
    # Forced, the file's boxes replace the photo's.
    assert main(["dataset", "import", str(zipped), "--as", "ann", "--force"]) == 0
    assert f"labels of {len(files)} photos imported" in capsys.readouterr().out
    assert field.labels()[changed] != before


def test_the_manifest_of_the_export_dates_it_exactly(field: Field,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Trivue's own export labelled on its files comes back with its manifest.json: its exported_at
    dates the labels, even when a later export covered the same days (the server's latest export
    would say the person's change came before)."""
    assert export(field, field.tmp / "lot") == 0
    changed = field.events[3]
    move_first_box(field, changed)
    before = field.labels()[changed]
    assert export(field, field.tmp / "later") == 0  # after the change
    shutil.rmtree(field.tmp / "later")
    capsys.readouterr()
    assert main(["dataset", "import", str(field.tmp / "lot"), "--as", "ann"]) == 0
    out = capsys.readouterr().out
    assert f"their labels not imported: {changed} (bea: move at " in out
    assert field.labels()[changed] == before
