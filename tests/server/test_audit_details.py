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
    ("token.create", "role=viewer communes=45234", "role_communes", {"role": "viewer", "communes": "45234"}),
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
    # The configuration's changes: the page words each setting and value (journal.js).
    ("truck.config", 'stream: null -> "glass"', "config_changes", {"changes": 'stream: null -> "glass"'}),
    ("truck.config", 'conf: 0.4 -> 0.5, model: null -> "trivue-waste 2026.12.03 (ab12ab12ab12)"', "config_changes",
     {"changes": 'conf: 0.4 -> 0.5, model: null -> "trivue-waste 2026.12.03 (ab12ab12ab12)"'}),
    ("model.rollout", "trivue-waste 2026.12.03: canary ['benne-01'], then ['benne-02', 'benne-03'] after 50 lifts each",
     "rollout", {"name": "trivue-waste", "version": "2026.12.03", "canary": "['benne-01']",
                 "rest": "['benne-02', 'benne-03']", "lifts": "50"}),
    ("model.rollout", "trivue-waste 2026.12.03: canary ['benne-a'], then [] after 20 lifts each; offline canaries "
     "['benne-a']: too few trucks online", "rollout_offline",
     {"name": "trivue-waste", "version": "2026.12.03", "canary": "['benne-a']", "rest": "[]", "lifts": "20",
      "offline": "['benne-a']"}),
    ("model.promote", "confirmed by user:camille", "confirmed", {"actor": "user:camille"}),
    ("model.promote", "every canary sent at least 50 lifts with the model, none refused: {'benne-01': 52}",
     "canaries_clean", {"lifts": "50", "counts": "{'benne-01': 52}"}),
    ("model.halt", "canary benne-01 refused the model: sha256 mismatch", "canary_refused",
     {"truck": "benne-01", "detail": "sha256 mismatch"}),  # the truck's own words: as it wrote them
    ("model.halt", "ingest refused 3 message(s) from the canaries since the rollout began (see dead letters)",
     "ingest_refused", {"count": "3"}),
    ("model.rollback", "rolled back by user:camille", "rolled_back", {"actor": "user:camille"}),
    ("model.rollback", "rolled back by user:camille; previous model unknown for ['benne-02']", "rolled_back_unknown",
     {"actor": "user:camille", "unknown": "['benne-02']"}),
    ("dataset.export", "yolo, 2026-11-01..2026-11-30, 13 photos ({'train': 10, 'val': 2, 'test': 1})", "dataset",
     {"format": "yolo", "since": "2026-11-01", "until": "2026-11-30", "n": "13", "train": "10", "val": "2",
      "test": "1"}),
    ("dead_letters.replay", "5 replayed: 4 stored, 1 refused again (reason=unknown_stream truck=benne-04)",
     "replayed_filter", {"n": "5", "stored": "4", "dead": "1", "chosen": "reason=unknown_stream truck=benne-04"}),
    ("dead_letters.replay", "stopped after 500 of 1200: dead letters replayed: 480 stored, 20 refused again",
     "replay_stopped", {"n": "500", "total": "1200", "stored": "480", "dead": "20"}),
    ("dead_letters.replay", "stopped after 0 of 7: dead letters replayed: 0 stored, 0 refused again "
     "(since=2026-11-01T00:00:00Z)", "replay_stopped_filter",
     {"n": "0", "total": "7", "stored": "0", "dead": "0", "chosen": "since=2026-11-01T00:00:00Z"}),
    ("aggregates.rebuild", "from UTC: 900 lifts read, 12 moved; 40 days before 2026-10-01 keep UTC: their raw lifts "
     "were deleted by retention, only their street totals remain, and 2026-10-01 runs from midnight UTC to midnight "
     "Europe/Paris", "rebuilt_kept", {"zone": "UTC", "lifts": "900", "moved": "12", "days": "40",
                                      "day": "2026-10-01", "kept": "UTC", "new": "Europe/Paris"}),
    # A file the erasure could not delete is counted (0: none of that kind), the manager's note as typed.
    ("reminders.household.erase", "contacts=1 items=2 letters=1 exclusions=0 dead_letters=0 route_sheets=1 "
     "letters_missing=1", "household_erase_missing",
     {"contacts": "1", "items": "2", "letters": "1", "exclusions": "0", "dead": "0", "sheets": "1",
      "letters_missing": "1", "sheets_missing": "0"}),
    ("reminders.household.erase", "contacts=0 items=1 letters=0 exclusions=0 dead_letters=0 route_sheets=0 "
     "letters_missing=2 route_sheets_missing=1 note=courrier du 3 décembre", "household_erase_missing_note",
     {"contacts": "0", "items": "1", "letters": "0", "exclusions": "0", "dead": "0", "sheets": "0",
      "letters_missing": "2", "sheets_missing": "1", "note": "courrier du 3 décembre"}),
    # The channel's own words (an SMTP server's answer): kept as written, the page says what happened.
    ("reminders.send.failed", "SMTP mail.example:587 : 550 mailbox unavailable", "send_failed",
     {"error": "SMTP mail.example:587 : 550 mailbox unavailable"}),
    ("reminders.send.retry", "passerelle SMS https://sms.example : timed out", "send_retry",
     {"error": "passerelle SMS https://sms.example : timed out"}),
]


@pytest.mark.parametrize(("action", "detail", "code", "values"), KNOWN)
def test_a_known_detail_reads_as_its_code_and_values(action: str, detail: str, code: str,
                                                     values: dict[str, str]) -> None:
    assert coded(action, detail) == (code, values)


@pytest.mark.parametrize(("action", "detail"), [
    ("lift.read", None), ("lift.read", ""),
    ("truck.config", '</td><script>x</script>stream: "glass" -> null'),  # not a change list
    ("truck.config", "colour: null -> 1"),  # a setting the server never sets
    ("reminders.household.erase", "contacts=1 items=2 letters=1 exclusions=0 dead_letters=0 route_sheets=1 "
     "route_sheets_missing=1 letters_missing=1"),  # never written in that order
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
