"""The training side reads what the server's ``trivue dataset export`` really writes (not only the
fixture that imitates it): one SQLite database, a few labelled photos, then merge and compare."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from base.paths import MODELS_DIR
from server.config import load_settings
from server.db import make_engine
from server.ingest.models import Lift
from server.labels.store import Decision, decide
from server.migrate import upgrade_database
from server.web.auth import add_user
from tests.server.photos import BOTTLE, photo_event, seed_photos
from training.compare import KEEP, compare
from training.field import merge_with_field
from trivue.cli import main
from vision.rules import SortingRules

SHIPPED = MODELS_DIR / "trivue-waste.onnx"


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Six collection days of labelled photos exported by the real command; one holds a battery."""
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 't.db'}",
                             ingest_enabled=False)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", settings.database_url)
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC).replace(hour=12)
    batch = [photo_event(i, at=now - timedelta(days=6 - i), boxes=[BOTTLE] if i % 2 else None) for i in range(6)]
    seed_photos(settings, sessions, batch)
    rules = SortingRules.load()  # the server's default sorting_rules
    with sessions() as session:
        add_user(session, "ada", "correct horse battery", "admin")
        for event, _ in batch:
            lift = session.scalar(select(Lift).where(Lift.event_id == str(event.event_id)))
            decide(session, lift, Decision("add", None, "battery", (0.6, 0.1, 0.9, 0.3)), "user:ann", rules)
            decide(session, lift, Decision("done"), "user:ann", rules)
        session.commit()
    engine.dispose()
    out = tmp_path / "terrain"
    since, until = (now - timedelta(days=30)).date().isoformat(), now.date().isoformat()
    assert main(["dataset", "export", "--since", since, "--until", until, "--out", str(out), "--as", "ada"]) == 0
    return out


def public_source(root: Path) -> Path:
    """A two-photo public dataset (its own class names) for the mapping's side of the merge."""
    for split, seed in (("train", 1), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / split / f"p{seed}.jpg"), pixels)
        (root / "labels" / split / f"p{seed}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"names": ["bottle"]}))
    return root


def test_a_real_export_trains_without_its_test_split_and_compares(export: Path, tmp_path: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    tests = [p for p in manifest["photos"] if p["split"] == "test"]
    assert tests and len(tests) < len(manifest["photos"])  # six days: some test days, some not
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"name": "t", "classes": ["bag", "bottle", "battery"], "sources": {
        "public": {"path": str(public_source(tmp_path / "public")), "map": {"bottle": "bottle"}}}}))
    field_map = tmp_path / "field-map.yaml"  # this model has a battery class: the field boxes of it train
    names = yaml.safe_load((export / "data.yaml").read_text())["names"]
    field_map.write_text(yaml.safe_dump({"map": {n: n if n in ("bag", "bottle", "battery") else None for n in names}}))

    report = merge_with_field(mapping, [export], tmp_path / "merged", map_path=field_map, cache_dir=tmp_path / "c")
    merged = (tmp_path / "merged" / "train.txt").read_text() + (tmp_path / "merged" / "val.txt").read_text()
    written = json.loads((tmp_path / "merged" / "report.json").read_text())["field"]["field-terrain"]
    assert written["test_photos"] == len(tests) and written["test_days"] == len({p["day"] for p in tests})
    assert all(p["event_id"] not in merged for p in tests)
    assert all(p["event_id"] in merged for p in manifest["photos"] if p["split"] != "test")
    assert report.sources["field-terrain"].boxes["battery"] == len(manifest["photos"]) - len(tests)

    # the shipped model has no battery class: the default field map leaves those boxes out, counted
    result = compare(SHIPPED, SHIPPED, export).to_json()
    assert result["images"] == len(tests) and result["left_out"] == {"battery": len(tests)}
    # a model is no gain on itself
    assert result["verdict"] == KEEP and any("must rise" in r for r in result["reasons"])
