"""Dataset merge and validation: real files in tmp_path, every fatal problem named by file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from base.paths import REPO_ROOT
from training.datasets import DatasetError, load_mapping, merge, read_source_names

TAXONOMY = ["bag", "bottle", "can"]


def make_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)


def make_source(root: Path, names: list[str], files: dict[str, dict[str, str | None]], seed: int = 0) -> Path:
    """files: split -> {stem: label text or None (no label file)}; every image distinct."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "names": names}))
    # One seed per file, counted: the seeds were hash((split, i)) % 997, and str hashing changes with
    # each process, so one run in ~1,000 gave train's first photo and val's first photo the same
    # pixels, and the merge rightly moved them into one split.
    numbered = ((split, stem, label) for split, stems in files.items() for stem, label in stems.items())
    for n, (split, stem, label) in enumerate(numbered):
        make_image(root / "images" / split / f"{stem}.jpg", seed * 1000 + n)
        if label is not None:
            path = root / "labels" / split / f"{stem}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(label)
    return root


def write_mapping(tmp_path: Path, sources: dict[str, dict]) -> Path:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"name": "test", "classes": TAXONOMY, "sources": sources}))
    return mapping


@pytest.fixture
def two_sources(tmp_path: Path) -> Path:
    make_source(tmp_path / "bags", ["general", "other"], {
        "train": {"a": "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n", "b": "", "c": None},
        "val": {"d": "1 0.5 0.5 0.4 0.4\n"},
    }, seed=1)
    make_source(tmp_path / "litter", ["bottle", "cans", "leaf"], {
        "train": {"e": "0 0.5 0.5 0.2 0.2\n1 0.99 0.5 0.04 0.2\n2 0.5 0.5 0.1 0.1\n"},
        "val": {"f": "1 0.5 0.5 0.1 0.1\n"},
    }, seed=2)
    return write_mapping(tmp_path, {
        "bags": {"path": "bags", "map": {"general": "bag", "other": "bag"}},
        "litter": {"path": "litter", "repeat": 3, "map": {"bottle": "bottle", "cans": "can", "leaf": None}},
    })


def test_merge_rewrites_classes_links_images_and_counts(two_sources: Path, tmp_path: Path) -> None:
    report = merge(two_sources, tmp_path / "out")
    out = tmp_path / "out"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "bag", 1: "bottle", 2: "can"}
    assert (out / "labels/train/bags__a.txt").read_text().split()[0::5] == ["0", "0"]
    assert (out / "labels/train/litter__e.txt").read_text().splitlines()[1].startswith("2 ")
    image = out / "images/train/bags__a.jpg"
    assert image.is_symlink() and image.resolve() == (tmp_path / "bags/images/train/a.jpg").resolve()
    bags, litter = report.sources["bags"], report.sources["litter"]
    assert bags.missing_labels == 1 and bags.empty_images == 2
    assert bags.boxes == {"bag": 3} and dict(bags.images) == {"train": 3, "val": 1}
    assert litter.dropped_boxes == 1  # leaf mapped to null
    assert litter.clipped_boxes == 1  # 0.99 + 0.02 runs past the right edge by a hair
    train_list = (out / "train.txt").read_text().splitlines()
    assert train_list.count(str(out / "images/train/litter__e.jpg")) == 3
    assert len((out / "val.txt").read_text().splitlines()) == 2
    assert len(report.data_hash) == 16


def test_data_hash_follows_labels(two_sources: Path, tmp_path: Path) -> None:
    first = merge(two_sources, tmp_path / "one").data_hash
    assert merge(two_sources, tmp_path / "two").data_hash == first
    (tmp_path / "bags/labels/val/d.txt").write_text("1 0.5 0.5 0.3 0.4\n")
    assert merge(two_sources, tmp_path / "three").data_hash != first


@pytest.mark.parametrize(("label", "message"), [
    ("7 0.5 0.5 0.1 0.1\n", "class id 7 unknown"),
    ("0 0.5 0.5 0.1\n", "expected 5 numbers"),
    ("zero 0.5 0.5 0.1 0.1\n", "not a 'class cx cy w h' row"),
    ("0 1.4 0.5 0.2 0.2\n", "lies outside the image"),
    ("0 0.5 0.5 -0.2 0.2\n", "lies outside the image"),
])
def test_fatal_label_problems_name_the_file_and_line(tmp_path: Path, label: str, message: str) -> None:
    make_source(tmp_path / "src", ["thing"], {"train": {"ok": "0 0.5 0.5 0.1 0.1\n", "bad": label},
                                              "val": {"v": ""}})
    mapping = write_mapping(tmp_path, {"src": {"path": "src", "map": {"thing": "bag"}}})
    with pytest.raises(DatasetError, match=message) as caught:
        merge(mapping, tmp_path / "out")
    assert "bad.txt:1" in str(caught.value)


def test_same_photo_in_train_and_val_ends_in_one_split(tmp_path: Path) -> None:
    root = make_source(tmp_path / "src", ["thing"], {"train": {"a": "0 0.5 0.5 0.1 0.1\n", "c": ""},
                                                     "val": {"b": "", "d": ""}})
    (root / "images/val/b.jpg").write_bytes((root / "images/train/a.jpg").read_bytes())
    mapping = write_mapping(tmp_path, {"src": {"path": "src", "map": {"thing": "bag"}}})
    report = merge(mapping, tmp_path / "out", cache_dir=tmp_path / "cache")
    val = (tmp_path / "out" / "val.txt").read_text()
    assert ("src__a.jpg" in val) == ("src__b.jpg" in val)
    assert report.sources["src"].near_duplicate_groups == 1


def test_identical_bytes_across_splits_are_refused() -> None:
    """The last guard, after grouping: the same file in train and val never reaches training."""
    from training.datasets import Sample, check_leaks

    a = Sample("src", "train", Path("a.jpg"), "same", ())
    b = Sample("src", "val", Path("b.jpg"), "same", ())
    with pytest.raises(DatasetError, match=r"b\.jpg is the same image as .*a\.jpg"):
        check_leaks([a, b])


def test_duplicates_within_a_split_are_counted_once(tmp_path: Path) -> None:
    root = make_source(tmp_path / "src", ["thing"], {"train": {"a": "0 0.5 0.5 0.1 0.1\n", "b": ""},
                                                     "val": {"v": ""}})
    (root / "images/train/b.jpg").write_bytes((root / "images/train/a.jpg").read_bytes())
    mapping = write_mapping(tmp_path, {"src": {"path": "src", "map": {"thing": "bag"}}})
    report = merge(mapping, tmp_path / "out")
    assert report.sources["src"].duplicates_within_split == 1
    assert report.sources["src"].images["train"] == 1


def test_unreadable_image_is_fatal(tmp_path: Path) -> None:
    root = make_source(tmp_path / "src", ["thing"], {"train": {"a": "0 0.5 0.5 0.1 0.1\n"}, "val": {"v": ""}})
    (root / "images/train/broken.jpg").write_bytes(b"not a jpeg at all")
    mapping = write_mapping(tmp_path, {"src": {"path": "src", "map": {"thing": "bag"}}})
    with pytest.raises(DatasetError, match=r"broken\.jpg: not a readable image"):
        merge(mapping, tmp_path / "out")


@pytest.mark.parametrize(("sources", "message"), [
    ({"src": {"path": "src", "map": {"thing": "sofa"}}}, "maps to classes not in 'classes'"),
    ({"src": {"path": "src", "map": {"thing": "bag", "ghost": "bag"}}}, "classes the dataset does not have"),
    ({"src": {"path": "src", "map": {}}}, r"classes \['thing'\] need a mapping"),
    ({"src": {"path": "src", "map": {"thing": "bag"}, "colour": "red"}}, "colour"),
    ({"src": {"path": "missing", "map": {"thing": "bag"}}}, "source .src.: .*missing: no such dataset folder"),
])
def test_bad_mappings_are_refused(tmp_path: Path, sources: dict, message: str) -> None:
    make_source(tmp_path / "src", ["thing"], {"train": {"a": "0 0.5 0.5 0.1 0.1\n"}, "val": {"v": ""}})
    with pytest.raises(DatasetError, match=message):
        merge(write_mapping(tmp_path, sources), tmp_path / "out")


def test_roboflow_layout_is_read(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    make_image(root / "train/images/a.jpg", 1)
    make_image(root / "valid/images/b.jpg", 2)
    (root / "train/labels").mkdir(parents=True)
    (root / "train/labels/a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"names": ["thing"]}))
    report = merge(write_mapping(tmp_path, {"rf": {"path": "rf", "map": {"thing": "can"}}}), tmp_path / "out")
    assert dict(report.sources["rf"].images) == {"train": 1, "val": 1}
    assert report.sources["rf"].missing_labels == 1


def test_shipped_mapping_matches_the_rules_and_shared_data(shared_dir: Path) -> None:
    from vision.rules import SortingRules

    spec = load_mapping(REPO_ROOT / "training" / "mapping.yaml")
    assert spec.classes == ["bag", "bottle", "can", "carton", "cup", "polystyrene", "film",
                            "glass", "electronics", "medical"]
    assert set(spec.classes) <= set(SortingRules.load().spec.classes)
    assert set(spec.sources) == {"hopper-bags", "litter-items", "glass-ewaste"}
    for name in spec.sources:  # every source class has a decision (a class, or null with a reason)
        assert set(spec.sources[name].map) == set(read_source_names(shared_dir / "datasets" / name)), name
