"""A household's error categories are listed most first, equal counts by name, in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from server.reminders.targets import count_categories


def _lift(*categories: str) -> SimpleNamespace:
    return SimpleNamespace(errors=[{"category": c, "severity": "error"} for c in categories])


def test_equal_counts_are_listed_by_name_whatever_the_lifts_order() -> None:
    lifts = [_lift("verre", "sacs"), _lift("sacs", "verre"), _lift("textile", "verre", "sacs"),
             _lift("info-only")]
    lifts[-1].errors[0]["severity"] = "info"  # not contamination: not counted
    for order in (lifts, lifts[::-1]):
        assert list(count_categories(order).most_common()) == [("sacs", 3), ("verre", 3), ("textile", 1)]


def test_the_order_holds_across_string_hash_seeds() -> None:
    # categories_of() returns a set: its order followed PYTHONHASHSEED, so one lift with two errors
    # listed them one way in one server process and the other way in the next.
    code = ("from types import SimpleNamespace as N; from server.reminders.targets import count_categories as c; "
            "print(list(c([N(errors=[{'category': k, 'severity': 'error'} for k in "
            "('verre', 'sacs', 'carton', 'textile')])])))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(seen) == 1, seen
