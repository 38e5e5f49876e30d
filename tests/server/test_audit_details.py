"""The *Journal d'audit* words an entry's detail in its reader's language: ``server.web.audit_details``
reads the stored English detail into a code and values (the stored detail is never changed), the
page words it with ``audit.detail.<code>``; a detail of no known form shows as written."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from server.audit import filter_words
from server.web.audit_details import FORMS, coded
from server.web.dashboard import TEMPLATES_DIR
from server.web.drilldown import LiftFilter

LIFTS_FILTER = filter_words(LiftFilter(street_id=343, day_since=date(2026, 11, 6)))

# (action, detail as its writer writes it, code, values)
KNOWN = [
    ("lift.read", "street level", "street_level", {}),
    ("lift.read", "address=12 rue de Bourgogne, 45000 Orléans bin=B-0042", "lift_household",
     {"address": "12 rue de Bourgogne, 45000 Orléans", "bin": "B-0042"}),
    ("dead_letters.read", "3 messages, payloads hidden", "messages_hidden", {"n": "3", "payloads": "hidden"}),
    ("lifts.list", f"12 lifts, {LIFTS_FILTER}, household_level=False", "lifts_household_False",
     {"n": "12", "filter": "street_id=343, day_since=2026-11-06", "household": "False"}),
    ("streets.export", "geojson, no filter", "streets_geojson", {"filter": "no filter"}),
    ("user.add", "role=manager", "role", {"role": "manager"}),
    ("token.create", "role=viewer truck=benne-04", "role_truck", {"role": "viewer", "truck": "benne-04"}),
    ("user.role", "viewer -> admin", "role_change", {"before": "viewer", "role": "admin"}),
    ("user.add", "role=viewer communes=45234,45284", "role_communes", {"role": "viewer", "communes": "45234,45284"}),
    ("user.communes", "all -> 45234", "communes_change", {"from": "all", "to": "45234"}),
    ("user.disable", "2 sessions ended", "sessions_ended", {"n": "2"}),
    ("login.locked", "5 failed logins within 15 min; this name refused from addresses where it never logged in",
     "locked_name", {"n": "5", "minutes": "15"}),
    ("reminders.send", "letter to addr:45234:12 level 2", "sent", {"channel": "letter", "key": "addr:45234:12",
                                                                   "level": "2"}),
    ("reminders.item.rejected", "addr:1 level 1 reason=false_detection", "item_reason",
     {"key": "addr:1", "level": "1", "reason": "false_detection"}),
    ("reminders.campaign.create", "40 items, lifts 2026-11-01..2026-11-30", "campaign_created",
     {"n": "40", "since": "2026-11-01", "until": "2026-11-30"}),
    ("reminders.household.opt_outs.read", "1 opposition", "opt_outs", {"n": "1"}),
    ("reminders.household.opt_in", "opposition recorded 2026-11-20 08:30 UTC by user:camille; note=erreur de saisie",
     "opt_in_note", {"at": "2026-11-20 08:30", "by": "user:camille", "note": "erreur de saisie"}),
    ("truck.model", "trivue-waste 2026.12.03 sha256 ab12 (was unknown), rollout 4", "truck_model_rollout",
     {"name": "trivue-waste", "version": "2026.12.03", "sha": "ab12", "was": "unknown", "rollout": "4"}),
    ("model.publish", "trivue-waste 2026.12.03, 12 classes, card no", "model_published_no",
     {"name": "trivue-waste", "version": "2026.12.03", "n": "12", "card": "no"}),
]


@pytest.mark.parametrize(("action", "detail", "code", "values"), KNOWN)
def test_a_known_detail_reads_as_its_code_and_values(action: str, detail: str, code: str,
                                                     values: dict[str, str]) -> None:
    assert coded(action, detail) == (code, values)


@pytest.mark.parametrize(("action", "detail"), [
    ("lift.read", None), ("lift.read", ""),
    ("truck.config", 'stream: null -> "glass"'),  # the configuration's own words: shown as written
    ("reminders.send", "street level"),  # a form belongs to its actions only
    ("lift.read", "street level, then more"),  # the whole detail, not its start
])
def test_an_unknown_detail_has_no_code(action: str, detail: str | None) -> None:
    assert coded(action, detail) is None


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_code_has_its_words_with_only_the_values_it_reads(lang: str) -> None:
    words = json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    for _, form, code in FORMS:
        groups = set(re.compile(form).groupindex)
        choices = {name: re.search(rf"\(\?P<{name}>([\w|]+)\)", form) for name in re.findall(r"\{(\w+)\}", code)}
        expanded = [code.format(**{name: value}) for name, found in choices.items() if found
                    for value in found[1].split("|")] or [code]
        for key in expanded:
            text = words.get(f"audit.detail.{key}")
            assert text, f"audit.detail.{key} missing in {lang}.json"
            used = set(re.findall(r"\{(\w+)[}|]", text))
            assert used <= groups, (key, used - groups)
