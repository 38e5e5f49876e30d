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
