"""How a lift's figures must agree with each other: its error items, its counts, ``contaminated`` and ``score``.

Part of the wire contract (``vision.schema.LiftEvent`` checks every lift with it), in its own module
so that the contract stays under its size limit; like it, it imports nothing but the standard library.
A lift that breaks one of these is refused as a schema error (a dead letter naming the class and the
numbers), never stored: the figures sum the error items (errors by type) and the scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from vision.severity import SEVERITY_WEIGHTS, Severity


class _Item(Protocol):
    @property
    def class_(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def severity(self) -> Severity: ...


def check_figures(counts: Mapping[str, int], errors: Sequence[_Item], contaminated: bool, score: float) -> None:
    """Raise ValueError naming the first figure the others contradict.

    An error item is one class of the lift's ``counts`` that the rules refuse: each class once (listed
    twice, its items counted twice in the error types), and at most the items counted of it (a truck
    judges its counts: more, or a class it never counted, is an error item made up). Fewer is allowed.
    """
    if contaminated != any(e.severity is not Severity.info for e in errors):
        raise ValueError("contaminated must be true exactly when an error of severity error/alert is listed")
    first: dict[str, int] = {}
    for i, item in enumerate(errors):
        if item.class_ in first:
            raise ValueError(f"errors.{i}: class '{item.class_}' is listed again "
                             f"(first as errors.{first[item.class_]}): one item per class, with all its items")
        first[item.class_] = i
        counted = counts.get(item.class_, 0)
        if item.count > counted:
            absent = "" if item.class_ in counts else " (the class is not in counts)"
            raise ValueError(f"errors.{i}: class '{item.class_}' counts {item.count} item{'s' * (item.count > 1)}, "
                             f"more than the {counted} of counts{absent}")
    expected = sum(e.count * SEVERITY_WEIGHTS[e.severity] for e in errors)
    if abs(score - expected) > 1e-6 * max(1.0, expected):  # figures sum the scores of lifts
        raise ValueError(f"score {score:g} is not the sum of the errors' counts by severity weight "
                         f"({expected:g}: {', '.join(f'{k} {w:g}' for k, w in SEVERITY_WEIGHTS.items())})")
