"""A lift's figures must agree with its own error list, as ``contaminated`` already must.

Found by an evaluator sending hand-built JSON: a clean lift with ``score: 99`` was accepted (and
summed into the street days' scores), and an error ``category`` such as ``"sac; verre=9"`` was
stored, which the CSV's ``top_errors`` cell (``sac=3; verre=1``) then could not be read back from.
Categories are the rules' own (``vision.severity.CATEGORY_PATTERN``): every Trivue truck sends those.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from vision.rules import SortingRules
from vision.schema import SchemaError, Stream, parse_lift_event
from vision.severity import SEVERITY_WEIGHTS


def _event(**changes: Any) -> bytes:
    body = {"event_id": str(uuid.uuid4()), "truck_id": "benne-01", "sequence": 1, "stream": "recyclables",
            "started_at": "2026-12-05T10:00:00Z", "ended_at": "2026-12-05T10:00:05Z", "counts": {"bag": 2},
            "errors": [{"class": "bag", "count": 2, "category": "sac", "severity": "error"}],
            "contaminated": True, "score": 2, "model": {"name": "m", "version": "1"}, "frames": 3}
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": 99}, "score 99 is not the sum of the errors' counts by severity weight (2:"),
        ({"errors": [], "contaminated": False, "score": 0.5}, "score 0.5 is not the sum"),
        ({"errors": [{"class": "bag", "count": 2, "category": "sac; verre=9", "severity": "error"}]},
         "errors.0.category: String should match pattern"),
        ({"errors": [{"class": "bag", "count": 2, "category": "=HYPERLINK(1)", "severity": "error"}]},
         "errors.0.category: String should match pattern"),
    ],
)
def test_incoherent_lifts_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        parse_lift_event(_event(**changes))


def test_the_rules_scores_are_accepted() -> None:
    rules = SortingRules.load()
    for stream in Stream:
        counts = {"bag": 3, "battery": 1, "bottle": 2, "glass": 1, "medical": 1}
        verdict = rules.judge(stream, counts)
        errors = [e.to_wire() for e in verdict.errors]
        event = parse_lift_event(_event(stream=stream.value, counts=counts, errors=errors,
                                        contaminated=verdict.contaminated, score=verdict.score))
        assert event.score == sum(e.count * SEVERITY_WEIGHTS[e.severity] for e in event.errors)


BAG = {"class": "bag", "count": 2, "category": "sac", "severity": "error"}
BATTERY = {"class": "battery", "count": 1, "category": "dangereux", "severity": "alert"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # The same class twice: its items counted twice in the error-type figures (and the score).
        ({"counts": {"bag": 2, "battery": 1}, "errors": [BAG, BATTERY, BAG], "score": 7},
         "errors.2: class 'bag' is listed again (first as errors.0): one item per class, with all its items"),
        # More items in error than the lift counted of that class.
        ({"counts": {"bag": 1, "bottle": 4}, "errors": [BAG]},
         "errors.0: class 'bag' counts 2 items, more than the 1 of counts"),
        # An error of a class the lift never counted.
        ({"counts": {"bag": 2}, "errors": [BAG, BATTERY], "score": 5},
         "errors.1: class 'battery' counts 1 item, more than the 0 of counts (the class is not in counts)"),
        ({"counts": {}, "errors": [BAG]}, "errors.0: class 'bag' counts 2 items, more than the 0 of counts"),
    ],
)
def test_error_items_must_agree_with_the_counts(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        parse_lift_event(_event(**changes))


def test_an_error_item_may_count_fewer_items_than_the_lift_counted() -> None:
    """The refusal is of what double counts or invents items; the figures count the error items."""
    event = parse_lift_event(_event(counts={"bag": 3, "bottle": 1}))
    assert [(e.class_, e.count) for e in event.errors] == [("bag", 2)]


@pytest.mark.parametrize("rules_file", [None, "rules_coco.yaml"])
def test_the_lifts_the_rules_judge_agree_with_their_counts(rules_file: str | None) -> None:
    """What a truck sends (``vision.lift``: the model's counts merged by the aliases, then judged)."""
    from base.paths import REPO_ROOT

    rules = SortingRules.load(REPO_ROOT / "vision" / rules_file if rules_file else None)
    model_counts = {"bag": 3, "battery": 1, "bottle": 2, "glass": 1, "medical": 1, "wine glass": 2, "vase": 1,
                    "bowl": 2, "cup": 1, "person": 4}
    for stream in rules.streams:
        known = {k: v for k, v in model_counts.items()
                 if k in rules.spec.classes or k in rules.spec.aliases or k in rules.spec.ignore}
        counts, verdict = rules.canonical_counts(known), rules.judge(stream, known)
        parse_lift_event(_event(stream=stream.value, counts=counts, errors=[e.to_wire() for e in verdict.errors],
                                contaminated=verdict.contaminated, score=verdict.score))
