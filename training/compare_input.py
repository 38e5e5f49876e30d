"""What ``trivue evaluate --compare`` measures the models on: the field test split as it can be read
(``training.yardstick``), its labels in the models' classes, refused when it cannot judge them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from training.datasets import DatasetError, SourceReport, rewrite_rows
from training.evaluate import LabelledImage
from training.field import FieldDataset, load_field_map, open_field
from training.yardstick import SplitPhotos


@dataclass(frozen=True, slots=True)
class FieldTest:
    """The field test split, its labels rewritten with the models' class ids."""

    dataset: FieldDataset
    split: SplitPhotos
    items: list[LabelledImage]
    boxes: int  # labelled boxes of the models' classes
    left_out: dict[str, int]  # field classes mapped to null: boxes not compared
    covered: frozenset[str]  # the models' classes some field class maps onto: labelled exhaustively


def field_test(data: Path, names: list[str], map_path: Path, workdir: Path, min_share: float) -> FieldTest:
    """The test split of the field export ``data``, refused (DatasetError, one line saying what to do)
    when it holds no photo, when fewer than ``min_share`` of the photos its manifest lists can be
    read, or when the photos read hold no box of the models' classes."""
    dataset = open_field(data)
    class_map = dataset.class_map(load_field_map(map_path, names), map_path, names)
    split = dataset.yardstick(datetime.now(UTC).date(), decode=True)
    if not split.expected:
        raise DatasetError(f"{dataset.root}: no test photos (images/test is empty or absent): export more "
                           "collection days, the test split gets one day in five")
    if not split.photos or len(split.photos) < min_share * split.expected:
        raise DatasetError(f"{dataset.root}: {split.describe()}: fewer than min_test_share {min_share:g} of them "
                           "remain, too few to compare models on the split the earlier ones were judged on; "
                           "restore the photos from a backup, or compare on a newer export (new test days)")
    items, left_out, report, rows = [], Counter(), SourceReport(), 0
    for image in split.photos:
        label = dataset.label(image)
        kept = rewrite_rows(label, class_map, report, names) if label.is_file() else []
        if label.is_file():  # rows checked by rewrite_rows: count the boxes it left out, per field class
            field_ids = [int(line.split()[0]) for line in label.read_text(encoding="utf-8").splitlines()
                         if line.strip()]
            rows += len(field_ids)
            left_out.update(dataset.names[i] for i in field_ids if class_map[i] is None)
        rewritten = workdir / f"{image.stem}.txt"
        rewritten.write_text("".join(f"{row}\n" for row in kept), encoding="utf-8")
        items.append(LabelledImage(image, rewritten, "field"))
    boxes = sum(report.boxes.values())
    if not boxes:
        what = ("no labelled box at all (labels/test holds no box)" if not rows else
                f"{rows} labelled boxes, none of a class the models have (field classes "
                f"{', '.join(f'{k} {v}' for k, v in sorted(left_out.items())) or 'outside the photos'}: {map_path} "
                "maps them to null)")
        raise DatasetError(f"{dataset.root}: the {len(items)} test photos read hold {what}: there is nothing to "
                           "measure the models on. Label the boxes of the test days' photos on the Annotation page "
                           "of the dashboard (or in Label Studio / CVAT and `trivue dataset import`), then "
                           "`trivue dataset export` again")
    covered = frozenset(names[i] for i in class_map if i is not None)
    return FieldTest(dataset, split, items, boxes, dict(sorted(left_out.items())), covered)
