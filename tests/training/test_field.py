"""Field datasets in training: train and val photos join, the frozen test split never does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from base.paths import REPO_ROOT
from tests.field_fixture import build_field_dataset, taxonomy
from training.card import sources_section
from training.datasets import DatasetError
from training.field import FIELD_MAP, load_field_map, merge_with_field, open_field
from training.train import TrainConfig, TrainError, prepare_data

MODEL_CLASSES = ["bag", "bottle", "can", "carton", "cup", "polystyrene", "film", "glass", "electronics", "medical"]
Setup = tuple[Path, Path]  # (mapping with a small public source, field export)
SMALL = {"hopper-bags": {"train": 4, "val": 2, "test": 3}, "litter-items": {"train": 4, "val": 1, "test": 3}}


def public_source(shared: Path, out: Path, per_split: int = 4) -> Path:
    """A few glass-ewaste photos (linked) in their own layout: the public side of a merge."""
    src = shared / "datasets" / "glass-ewaste"
    for split in ("train", "val"):
        for image in sorted((src / "images" / split).glob("*.jpg"))[:per_split]:
            for kind, path in (("images", image), ("labels", src / "labels" / split / f"{image.stem}.txt")):
                (out / kind / split).mkdir(parents=True, exist_ok=True)
                (out / kind / split / path.name).symlink_to(path)
    shutil.copyfile(src / "data.yaml", out / "data.yaml")
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Near-duplicate findings, cached by content (as in use): the public source's is shared."""
    return tmp_path_factory.mktemp("near-duplicates")


@pytest.fixture
def setup(shared_dir: Path, tmp_path: Path) -> Setup:
    """(mapping with one small public source, field export of 8 train / 3 val / 6 test photos)."""
    mapping = yaml.safe_load((REPO_ROOT / "training" / "mapping.yaml").read_text())
    mapping["sources"] = {"glass-ewaste": mapping["sources"]["glass-ewaste"]}
    mapping["sources"]["glass-ewaste"]["path"] = str(public_source(shared_dir, tmp_path / "public"))
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    return tmp_path / "mapping.yaml", build_field_dataset(tmp_path / "terrain-2026-11", counts=SMALL)


def twins_dropped(merged: Path) -> int:
    return json.loads((merged / "report.json").read_text())["field"]["field-terrain-2026-11"]["test_twins_dropped"]


def merged_files(out: Path, split: str) -> list[str]:
    return [Path(line).name for line in (out / f"{split}.txt").read_text().split()]


def test_field_train_and_val_join_the_test_split_never(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    report = merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)
    counts = report.sources["field-terrain-2026-11"]
    field_report = json.loads((tmp_path / "out" / "report.json").read_text())["field"]["field-terrain-2026-11"]
    assert field_report["test_photos"] == 6 and field_report["test_days"] == 3
    tests = {p.name for p in (field / "images" / "test").iterdir()}
    train, val = merged_files(tmp_path / "out", "train"), merged_files(tmp_path / "out", "val")
    everything = {p.name.split("__", 1)[1] for p in (tmp_path / "out" / "images").rglob("*.jpg")
                  if p.name.startswith("field-")}
    assert not tests & everything, "a field test photo reached the merged dataset"
    field_train = [n for n in train if n.startswith("field-terrain-2026-11__")]
    field_val = [n for n in val if n.startswith("field-terrain-2026-11__")]
    # every train/val photo joins, except those that are the same shot as a test photo (counted)
    assert len(field_train) + len(field_val) + field_report["test_twins_dropped"] == 8 + 3
    assert counts.images["train"] == len(field_train) and counts.images["val"] == len(field_val)
    assert any(n.startswith("glass-ewaste__") for n in train)  # the public source is still there
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    # field labels are exhaustive for every class the field map keeps: no class masked
    assert data["trivue_sources"]["field-terrain-2026-11"] == list(range(10))
    assert data["trivue_sources"]["glass-ewaste"] == [2, 7, 8, 9]
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["field"]["field-terrain-2026-11"]["test_photos"] == 6
    # the model card names the field photos beside the public sources
    rows = sources_section(mapping, {"per_source": {}}, written)
    field_row = next(row for row in rows if row.startswith("| field-terrain-2026-11 |"))
    assert "own photos (personal data)" in field_row and "6 test photos never trained on" in field_row
    # labels rewritten from the rules' class ids to the model's: the same classes by name
    rules, boxes = taxonomy(), 0
    for name in field_train:
        stem = Path(name.split("__", 1)[1]).stem
        rows = (field / "labels" / "train" / f"{stem}.txt").read_text().splitlines()
        before = [rules[int(r.split()[0])] for r in rows]
        merged = (tmp_path / "out" / "labels" / "train" / f"{Path(name).stem}.txt").read_text().splitlines()
        assert sorted(MODEL_CLASSES[int(r.split()[0])] for r in merged) == sorted(before)
        boxes += len(merged)
    assert boxes > 10 and rules.index("glass") != MODEL_CLASSES.index("glass")  # a real rewrite


def test_a_test_photo_moved_into_train_is_refused(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    photo = sorted((field / "images" / "test").iterdir())[0]
    shutil.move(photo, field / "images" / "train" / photo.name)
    with pytest.raises(DatasetError, match=rf"{photo.name}: manifest.json puts this photo in the test split"):
        merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)
    assert not (tmp_path / "out").exists()


def test_a_field_test_photo_copied_into_a_public_source_is_refused(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    photo = sorted((field / "images" / "test").iterdir())[0]
    shutil.copyfile(photo, tmp_path / "public" / "images" / "train" / "copied.jpg")
    with pytest.raises(DatasetError, match=r"copied\.jpg \(glass-ewaste, train\) is the field test photo"):
        merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)


def test_a_mirrored_copy_of_a_test_photo_is_left_out_of_training(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    photo = sorted((field / "images" / "test").iterdir())[0]
    cv2.imwrite(str(field / "images" / "train" / "mirrored.jpg"), cv2.flip(cv2.imread(str(photo)), 1))
    (field / "labels" / "train" / "mirrored.txt").write_text("")
    first = merge_with_field(mapping, [field], tmp_path / "first", cache_dir=cache)
    kept = merged_files(tmp_path / "first", "train") + merged_files(tmp_path / "first", "val")
    assert "field-terrain-2026-11__mirrored.jpg" not in kept
    dropped = twins_dropped(tmp_path / "first")
    assert dropped == 1  # the mirrored copy, and only it: the fixture holds no other twin
    # the finding is cached by content: a second merge reads it and drops the same photos
    second = merge_with_field(mapping, [field], tmp_path / "second", cache_dir=cache)
    assert twins_dropped(tmp_path / "second") == dropped
    assert first.sources["field-terrain-2026-11"].images == second.sources["field-terrain-2026-11"].images


def test_field_map_is_strict_and_names_the_class_and_file(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    shipped = yaml.safe_load(FIELD_MAP.read_text())
    assert set(shipped["map"]) == set(taxonomy())  # the shipped map covers the rules' classes
    cases = {
        "missing": ({**shipped, "map": {k: v for k, v in shipped["map"].items() if k != "battery"}},
                    r"class 'battery' is not in the field map .*missing\.yaml"),
        "typo": ({**shipped, "map": {**shipped["map"], "batery": None}},
                 r"typo\.yaml: class 'batery' is not a class of .*data\.yaml"),
        "target": ({**shipped, "map": {**shipped["map"], "battery": "pile"}},
                   r"target\.yaml: field class 'battery' maps to 'pile', which is not a class of the model"),
        "key": ({**shipped, "weights": 2}, r"key\.yaml: unknown key 'weights'"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(content))
        with pytest.raises(DatasetError, match=message):
            merge_with_field(mapping, [field], tmp_path / "out", map_path=path, cache_dir=cache)
    assert load_field_map(FIELD_MAP, MODEL_CLASSES).map["battery"] is None


def test_what_is_not_a_field_export_is_refused(setup: Setup, tmp_path: Path) -> None:
    _, field = setup
    (field / "manifest.json").unlink()
    with pytest.raises(DatasetError, match=r"manifest\.json: absent"):
        open_field(field)
    with pytest.raises(DatasetError, match="no such field dataset folder"):
        open_field(tmp_path / "nowhere")
    plain = TrainConfig(data=tmp_path / "public" / "data.yaml", run_dir=tmp_path / "run", field=(field,))
    with pytest.raises(TrainError, match="--field needs a mapping YAML"):
        prepare_data(plain)


def test_two_field_exports_with_one_folder_name_are_refused(setup: Setup, tmp_path: Path, cache: Path) -> None:
    mapping, field = setup
    other = tmp_path / "elsewhere" / field.name
    shutil.copytree(field, other)
    with pytest.raises(DatasetError, match="a second source named field-terrain-2026-11"):
        merge_with_field(mapping, [field, other], tmp_path / "out", cache_dir=cache)


@pytest.mark.heavy(cpu_s=25)
@pytest.mark.train
def test_train_with_a_field_dataset_smoke(setup: Setup, tmp_path: Path, cache: Path) -> None:
    """One tiny epoch through the command: field photos in the run's data, test photos nowhere."""
    pytest.importorskip("ultralytics")
    mapping, field = setup
    run, home = tmp_path / "run", tmp_path / "home"
    # a fresh HOME and a dead proxy: any download attempt would show
    env = {**os.environ, "HOME": str(home), "HTTPS_PROXY": "http://127.0.0.1:9", "XDG_CACHE_HOME": str(cache)}
    env.pop("YOLO_CONFIG_DIR", None)
    result = subprocess.run([sys.executable, "-m", "trivue", "train", "--data", str(mapping), "--field", str(field),
                             "--run", str(run), "--init", "scratch", "--epochs", "1", "--imgsz", "64", "--batch", "8",
                             "--no-plots", "--threads", "2", "--lr0", "0.0005", "--warmup-epochs", "0"],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "train" / "weights" / "best.pt").is_file()
    recorded = json.loads((run / "trivue.json").read_text())
    assert recorded["field"] == [str(field)] and recorded["field_map"] is None
    assert (recorded["lr0"], recorded["warmup_epochs"]) == (0.0005, 0.0)
    used = yaml.safe_load((run / "train" / "args.yaml").read_text())  # what Ultralytics trained with
    schedule = (used["optimizer"], used["lr0"], used["warmup_epochs"], used["warmup_bias_lr"])
    assert schedule == ("AdamW", 0.0005, 0.0, 0.0)
    assert (used["device"], used["amp"], recorded["device"], recorded["precision"]) == ("cpu", False, "cpu", "fp32")
    listed = (run / "data" / "train.txt").read_text() + (run / "data" / "val.txt").read_text()
    assert "field-terrain-2026-11__" in listed
    assert not any(p.name in listed for p in (field / "images" / "test").iterdir())
    # what Ultralytics actually read: its label cache lists every image it loaded, train and val
    read = [Path(entry["im_file"]).name for cache_file in (run / "data" / "labels").glob("*.cache")
            for entry in np.load(cache_file, allow_pickle=True).item()["labels"]]
    assert any(name.startswith("field-terrain-2026-11__") for name in read)
    assert not {f"field-terrain-2026-11__{p.name}" for p in (field / "images" / "test").iterdir()} & set(read)


def test_two_exports_made_under_different_rules_files_share_one_field_map(setup: Setup, tmp_path: Path,
                                                                          cache: Path) -> None:
    """December's export was made after the rules file gained a class (`aerosol`, third): its class ids
    moved. One field map covers both exports; each entry must be a class of one of them, not of all."""
    mapping, field = setup
    december = tmp_path / "terrain-2026-12"
    shutil.copytree(field, december)
    names = taxonomy()
    edited = [*names[:2], "aerosol", *names[2:]]
    data = yaml.safe_load((december / "data.yaml").read_text())
    (december / "data.yaml").write_text(yaml.safe_dump({**data, "path": str(december), "nc": len(edited),
                                                        "names": edited}))
    manifest = json.loads((december / "manifest.json").read_text())
    (december / "manifest.json").write_text(json.dumps({**manifest, "names": edited}))
    for label in (december / "labels").rglob("*.txt"):  # the same boxes under the edited rules' ids
        rows = [row.split(" ", 1) for row in label.read_text().splitlines() if row.strip()]
        label.write_text("".join(f"{int(c) + (int(c) >= 2)} {rest}\n" for c, rest in rows))
    first = sorted((december / "labels" / "train").iterdir())[0]
    first.write_text(first.read_text() + "2 0.5 0.5 0.1 0.2\n")  # one aerosol can
    shared_map = yaml.safe_load(FIELD_MAP.read_text())
    shared_map["map"]["aerosol"] = None
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(shared_map))

    report = merge_with_field(mapping, [field, december], tmp_path / "out", map_path=tmp_path / "both.yaml",
                              cache_dir=cache)
    assert report.sources["field-terrain-2026-12"].dropped_boxes == 1  # the aerosol, not trained
    for name in merged_files(tmp_path / "out", "train"):
        if name.startswith("field-terrain-2026-12__"):  # same photo, same model classes in both exports
            twin = name.replace("field-terrain-2026-12__", "field-terrain-2026-11__")
            rows = [(tmp_path / "out" / "labels" / "train" / f"{Path(n).stem}.txt").read_text().splitlines()
                    for n in (name, twin)]
            assert sorted(rows[0]) == sorted(rows[1])
    shared_map["map"]["aerosole"] = None  # a typo is still refused: no export has that class
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(shared_map))
    with pytest.raises(DatasetError, match=r"typo\.yaml: class 'aerosole' is not a class of .*data\.yaml"):
        merge_with_field(mapping, [field, december], tmp_path / "out2", map_path=tmp_path / "typo.yaml",
                         cache_dir=cache)


def test_a_photo_in_two_overlapping_exports_is_trained_once_with_its_newest_labels(setup: Setup, tmp_path: Path,
                                                                                   cache: Path) -> None:
    """Exports overlap (a cumulative export beside last month's, both passed with --field): a photo
    in both was trained twice, and with both labellings when it was relabelled in between."""
    mapping, older = setup
    newer = tmp_path / "terrain-2026-12"
    shutil.copytree(older, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["exported_at"] = "2099-01-01T00:00:00+00:00"  # exported after the other one
    (newer / "manifest.json").write_text(json.dumps(manifest))
    relabelled = sorted((newer / "labels" / "train").iterdir())[0]
    relabelled.write_text("0 0.5 0.5 0.2 0.2\n")  # the photo was relabelled: one bag
    merge_with_field(mapping, [newer, older], tmp_path / "out", cache_dir=cache)
    stems = [Path(n.split("__", 1)[1]).stem for n in merged_files(tmp_path / "out", "train") + merged_files(
        tmp_path / "out", "val") if n.startswith("field-")]
    assert len(stems) == len(set(stems)), "a field photo is listed twice"
    (kept,) = [n for n in merged_files(tmp_path / "out", "train") if relabelled.stem in n]
    assert kept.startswith("field-terrain-2026-12__")  # the newest export's labels
    field = json.loads((tmp_path / "out" / "report.json").read_text())["field"]
    # every train and val photo of the older export is in the newer one: counted, left out
    assert (field["field-terrain-2026-11"]["in_newer_export"], field["field-terrain-2026-12"]["in_newer_export"]) == (
        8 + 3, 0)


def test_a_training_photo_that_is_the_same_shot_as_another_exports_test_photo_is_left_out(
        setup: Setup, tmp_path: Path, cache: Path) -> None:
    """A night round across midnight: the 23:50 frame is a training photo of November's export, the
    next frame of the burst (a crop of it, 00:10) a test photo of December's. Looked for within each
    export only, the pair was missed and the held-out number measured a photo the model trained on."""
    mapping, november = setup
    december = tmp_path / "terrain-2026-12"
    for kind in ("images", "labels"):
        for split in ("train", "val", "test"):
            (december / kind / split).mkdir(parents=True)
    shutil.copyfile(november / "data.yaml", december / "data.yaml")
    frame = sorted((november / "images" / "train").iterdir())[0]
    image = cv2.imread(str(frame))
    height, width = image.shape[:2]
    next_frame = image[int(height * 0.04):, int(width * 0.03):int(width * 0.97)]
    cv2.imwrite(str(december / "images" / "test" / "next-frame.jpg"), next_frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    (december / "labels" / "test" / "next-frame.txt").write_text("")
    manifest = json.loads((november / "manifest.json").read_text())
    test_photo = {**manifest["photos"][0], "file": "images/test/next-frame.jpg", "event_id": "next-frame",
                  "split": "test", "day": "2026-12-01"}
    (december / "manifest.json").write_text(json.dumps({**manifest, "since": "2026-12-01", "until": "2026-12-31",
                                                        "exported_at": "2099-01-01T00:00:00+00:00",
                                                        "photos": [test_photo]}))
    merge_with_field(mapping, [november, december], tmp_path / "out", cache_dir=cache)
    trained = merged_files(tmp_path / "out", "train") + merged_files(tmp_path / "out", "val")
    assert f"field-terrain-2026-11__{frame.name}" not in trained
    assert twins_dropped(tmp_path / "out") == 1  # November's photo, counted where it was left out


def test_photos_past_their_retention_date_are_left_out_of_training(setup: Setup, tmp_path: Path, cache: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An export folder kept after its photos' retention dates (privacy.md proposes deleting it,
    nothing made anyone) went on feeding every training run. A photo expires on its date (UTC)."""
    mapping, field = setup
    manifest = json.loads((field / "manifest.json").read_text())
    today = datetime.now(UTC).date()
    trained = [p for p in manifest["photos"] if p["split"] in ("train", "val")]
    for photo, until in zip(trained, (today - timedelta(days=40), today, today + timedelta(days=1)), strict=False):
        photo["retention_until"] = until.isoformat()
    (field / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="training.field"):
        report = merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)
    kept = " ".join(merged_files(tmp_path / "out", "train") + merged_files(tmp_path / "out", "val"))
    assert Path(trained[0]["file"]).name not in kept and Path(trained[1]["file"]).name not in kept
    assert Path(trained[2]["file"]).name in kept  # expires tomorrow: still trained on
    written = json.loads((tmp_path / "out" / "report.json").read_text())["field"]["field-terrain-2026-11"]
    assert written["expired_left_out"] == 2
    assert sum(report.sources["field-terrain-2026-11"].images.values()) == 8 + 3 - 2 - written["test_twins_dropped"]
    assert "2 train/val photos left out of training: their retention date" in caplog.text
    trained[0]["retention_until"] = "bientôt"  # a hand-edited manifest: refused, naming the photo
    (field / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"retention_until 'bientôt' is not a date"):
        merge_with_field(mapping, [field], tmp_path / "again", cache_dir=cache)


def test_test_photos_gone_from_the_export_are_counted_and_carded(setup: Setup, tmp_path: Path, cache: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Test photos deleted past their retention date (as privacy.md asks) or lost in a copy shrank
    the split silently: report.json and the card said "4 test photos" of a split of 6."""
    from training.card import facts, limits

    mapping, field = setup
    manifest = json.loads((field / "manifest.json").read_text())
    tests = [p for p in manifest["photos"] if p["split"] == "test"]
    tests[0]["retention_until"] = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    (field / "manifest.json").write_text(json.dumps(manifest))
    for photo in tests[:2]:
        (field / photo["file"]).unlink()
    with caplog.at_level("WARNING", logger="training.field"):
        merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)
    merge_report = json.loads((tmp_path / "out" / "report.json").read_text())
    written = merge_report["field"]["field-terrain-2026-11"]
    assert (written["test_photos"], written["test_photos_listed"]) == (4, 6)
    assert written["test_photos_left_out"] == {"expired": 1, "absent": 1}
    assert "4 of the 6 test photos of manifest.json read, 2 left out" in caplog.text
    row = next(line for line in sources_section(mapping, {}, merge_report) if "field-terrain-2026-11" in line)
    assert "4 test photos never trained on (2 more listed could not be read, left out)" in row
    stated = "\n".join(limits(facts(MODEL_CLASSES, mapping, merge_report)))
    assert ("- field-terrain-2026-11: 2 of the 6 test photos its manifest lists could not be read and were left out "
            "(1 past their retention date (retention_until in manifest.json), deleted from the folder; 1 absent "
            "from images/test though not past their retention date (deleted or not copied))") in stated


def test_the_log_counts_the_test_photos_as_the_report_does(setup: Setup, tmp_path: Path, cache: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Two test photos with the same bytes (the demo's trucks replay the same photos) made the log say
    "5 test photos … kept out of training" while report.json, the card and --compare said 6."""
    mapping, field = setup
    first, second = sorted((field / "images" / "test").iterdir())[:2]
    shutil.copyfile(first, second)
    with caplog.at_level("INFO", logger="training.field"):
        merge_with_field(mapping, [field], tmp_path / "out", cache_dir=cache)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["field"]["field-terrain-2026-11"][
        "test_photos"] == 6
    assert "field-terrain-2026-11: 6 test photos of 3 collection days kept out of training" in caplog.text
