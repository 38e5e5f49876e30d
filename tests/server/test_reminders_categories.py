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


def test_letters_route_sheets_and_the_api_list_equal_counts_by_name() -> None:
    # Items planned before the fix above hold their categories in their process's set order, and a
    # street's route-sheet line adds its items' up in item order: what is shown sorts equal counts itself.
    from datetime import date

    from server.reminders.config import RemindersConfig
    from server.reminders.models import Item
    from server.reminders.templates import MessageTemplates, TemplateData
    from server.reminders.views import item_json
    from server.reminders.walking_route import errors_text
    from vision.rules import SortingRules

    templates = MessageTemplates(RemindersConfig(), SortingRules.load())
    for stored in ({"verre": 2, "sac_ferme": 2, "textile": 5}, {"sac_ferme": 2, "verre": 2, "textile": 5}):
        assert errors_text(stored) == "textiles (5), sacs fermés (2), verre (2)"
        message = TemplateData("household", 1, "Foyer", "Rue", 9, 7, stored, date(2026, 10, 1), date(2026, 10, 31))
        assert [e["category"] for e in templates.context(message)["errors"]] == ["textile", "sac_ferme", "verre"]
        item = Item(id=1, kind="household", level=1, target_key="bin:B1", lifts=9, contaminated=7,
                    categories=stored, event_ids=[], reason="", status="pending")
        assert [c["category"] for c in item_json(item, {}, {}, RemindersConfig(), set())["categories"]] == [
            "textile", "sac_ferme", "verre"]
