"""Sorting rules: French defaults, strict loading, every model class covered."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vision.rules import COCO_RULES, DEFAULT_RULES, RulesError, SortingRules
from vision.schema import Severity, Stream

TRIVUE_CLASSES = ("bag", "bottle", "can", "carton", "cup", "polystyrene", "film")


@pytest.fixture(scope="module")
def rules() -> SortingRules:
    return SortingRules.load()


@pytest.mark.parametrize(
    ("stream", "counts", "errors", "contaminated", "score"),
    [
        (Stream.recyclables, {"bottle": 3, "can": 1}, {}, False, 0.0),
        (Stream.recyclables, {"bottle": 3, "bag": 2}, {"bag": "error"}, True, 2.0),
        (Stream.recyclables, {"battery": 1, "film": 2}, {"battery": "alert"}, True, 3.0),
        (Stream.glass, {"glass": 4, "bottle": 1}, {"bottle": "error"}, True, 1.0),
        (Stream.residual, {"bag": 3, "bottle": 2}, {"bottle": "info"}, False, 0.0),
        (Stream.residual, {"gas_cylinder": 1}, {"gas_cylinder": "alert"}, True, 3.0),
        (Stream.biowaste, {"food": 5, "film": 1}, {"film": "error"}, True, 1.0),
        (Stream.recyclables, {}, {}, False, 0.0),
        (Stream.recyclables, {"bag": 0}, {}, False, 0.0),
    ],
)
def test_judge(rules: SortingRules, stream: Stream, counts: dict[str, int], errors: dict[str, str],
               contaminated: bool, score: float) -> None:
    verdict = rules.judge(stream, counts)
    assert {e.class_: e.severity.value for e in verdict.errors} == errors
    assert verdict.contaminated is contaminated
    assert verdict.score == score


def test_error_items_carry_count_and_category(rules: SortingRules) -> None:
    (item,) = rules.judge(Stream.recyclables, {"bag": 2, "bottle": 1}).errors
    assert (item.class_, item.count, item.category, item.severity) == ("bag", 2, "sac_ferme", Severity.error)


def test_every_stream_covers_the_trivue_taxonomy(rules: SortingRules) -> None:
    for stream in Stream:
        blind = rules.check_model(TRIVUE_CLASSES, stream)
        assert "bag" not in blind
        assert {"battery", "gas_cylinder", "glass"} <= set(blind)


def test_model_class_without_rule_stops_startup(rules: SortingRules) -> None:
    with pytest.raises(RulesError, match=r"'sofa'.*'recyclables'"):
        rules.check_model([*TRIVUE_CLASSES, "sofa"], Stream.recyclables)


def test_coco_rules_cover_all_80_coco_classes(coco_model: Path) -> None:
    import onnxruntime as ort

    from vision.model import read_meta

    names = read_meta(ort.InferenceSession(str(coco_model)), coco_model).names
    assert len(names) == 80
    coco = SortingRules.load(COCO_RULES)
    for stream in Stream:
        coco.check_model(names, stream)
    verdict = coco.judge(Stream.recyclables, {"person": 2, "wine glass": 1, "cup": 1, "bowl": 1})
    assert [(e.class_, e.count) for e in verdict.errors] == [("tableware", 1)]  # a wine glass is not packaging
    assert coco.canonical_counts({"cup": 1, "bowl": 2, "car": 1}) == {"cup": 3}


def write_rules(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["streams"]["glass"]["error"].append("glass"), "both accepted and error"),
        (lambda d: d["streams"]["glass"]["error"].append("unicorn"), "unicorn"),
        (lambda d: d["streams"].update(nuclear={"label": "x"}), "nuclear"),
        (lambda d: d["classes"]["bag"].update(category="Sac Fermé"), "category"),
        (lambda d: d.update(aliases={"bin bag": "sack"}), "sack"),
    ],
)
def test_bad_rules_files_are_refused(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RulesError, match=message):
        SortingRules.load(write_rules(tmp_path, mutate))


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not found"):
        SortingRules.load(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("streams: [unclosed", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        SortingRules.load(broken)
