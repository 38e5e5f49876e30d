"""An audit entry's detail as a code and values, for the journal to word in its reader's language.

The trail stores each detail as its writer wrote it, in English (``server.audit``): the CLI, the
exports and the API keep it so. The *Journal d'audit* page showed it as is, English on the French
page. Each known form is read here into a code and its values (``lift.read``'s ``address=… bin=…``:
``lift_household``, ``{address, bin}``); the page words it with ``audit.detail.<code>`` in its
language (``server/static/journal.js``). A detail of no known form (an older wording, a free note)
has no code and shows as written.
"""

from __future__ import annotations

import re

N = r"(?P<n>\d+)"
DAY = r"\d{4}-\d{2}-\d{2}"
MODEL = r"(?P<name>\S+) (?P<version>\S+)"
ERASED = (r"contacts=(?P<contacts>\d+) items=(?P<items>\d+) letters=(?P<letters>\d+) exclusions=(?P<exclusions>\d+) "
          r"dead_letters=(?P<dead>\d+) route_sheets=(?P<sheets>\d+)")
OPPOSED = rf"opposition recorded (?P<at>{DAY} \d{{2}}:\d{{2}}) UTC by (?P<by>[^;]+)"
# The files an erasure could not delete, each count written only when not 0 (read as 0 when absent).
MISSING = r"(?= (?:letters|route_sheets)_missing=)(?: letters_missing=(?P<letters_missing>\d+))?" \
          r"(?: route_sheets_missing=(?P<sheets_missing>\d+))?"
# A truck config change (server.fleet.config_change): ``key: old -> new`` for each setting, JSON values.
SETTING = r"(?:stream|conf|min_track_frames|model): .+? -> .+?"
TRUCKS = r"\[[^\]]*\]"  # a Python list of truck ids, as the rollout's sentence writes it
REPLAYED = r"dead letters replayed: (?P<stored>\d+) stored, (?P<dead>\d+) refused again"

# (actions, the detail's whole form, code): ``{group}`` in a code is that group's value, for the forms
# whose words change with a value (shown or hidden, yes or no). First match wins.
FORMS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("lift.read",), r"street level", "street_level"),
    (("lift.read",), r"address=(?P<address>.*) bin=(?P<bin>\S*)", "lift_household"),
    (("evidence.read",), r"labelling", "labelling"),
    (("dead_letters.read",), N + r" messages, payloads (?P<payloads>shown|hidden)", "messages_{payloads}"),
    (("lifts.list",), N + r" lifts, (?P<filter>.*), household_level=(?P<household>True|False)",
     "lifts_household_{household}"),
    (("streets.export",), r"csv, " + N + r" streets, (?P<filter>.*)", "streets_csv"),
    (("streets.export",), r"geojson, (?P<filter>.*)", "streets_geojson"),
    (("user.add", "token.create"), r"role=(?P<role>\w+)", "role"),
    (("token.create",), r"role=(?P<role>\w+) truck=(?P<truck>\S+)", "role_truck"),
    (("user.password", "user.disable"), N + r" sessions ended", "sessions_ended"),
    (("user.role",), r"(?P<before>\w+) -> (?P<role>\w+)", "role_change"),
    (("user.add", "token.create"), r"role=(?P<role>\w+) communes=(?P<communes>[\w,]+)", "role_communes"),
    (("user.communes",), r"(?P<from>[\w,]+) -> (?P<to>[\w,]+)", "communes_change"),
    (("login.locked",), N + r" failed logins within (?P<minutes>\d+) min; (?P<address>\S+): this address refused "
     r"for names it never logged in as", "locked_address"),
    (("login.locked",), N + r" failed logins within (?P<minutes>\d+) min; this name refused from addresses where "
     r"it never logged in", "locked_name"),
    (("reminders.send",), r"(?P<channel>\w+) to (?P<key>.+) level (?P<level>\d+)", "sent"),
    (("reminders.send.skipped",), r"opt-out", "opt_out"),
    (("reminders.item.approved", "reminders.item.rejected"), r"(?P<key>.+) level (?P<level>\d+)", "item"),
    (("reminders.item.rejected",), r"(?P<key>.+) level (?P<level>\d+) reason=(?P<reason>\w+)", "item_reason"),
    (("reminders.campaign.create",), N + rf" items, lifts (?P<since>{DAY})\.\.(?P<until>{DAY})", "campaign_created"),
    (("reminders.campaign.read",), N + r" items", "items"),
    (("reminders.campaign.read",), N + r" items \(cli\)", "items_cli"),
    (("reminders.campaign.read",), N + r" items, (?P<hidden>\d+) household items hidden", "items_hidden"),
    (("reminders.plan.read",), rf"lifts (?P<since>{DAY})\.\.(?P<until>{DAY})", "plan"),
    (("reminders.effect.read",), N + r" household units", "household_units"),
    (("reminders.false_detections.read", "reminders.false_detections.export"), N + r" rows", "rows"),
    (("reminders.household.opt_outs.read",), N + r" oppositions?", "opt_outs"),
    (("reminders.contacts.import",), r"(?P<added>\d+) added, (?P<updated>\d+) updated, (?P<refused>\d+) refused",
     "contacts_import"),
    (("reminders.letters.printed",), N + r" letters, (?P<first>\d+) first printed, (?P<again>\d+) reprinted",
     "letters_printed"),
    (("reminders.file.export",), r"(?P<file>.+): " + N + r" letters, (?P<pages>\d+) pages", "letters_file"),
    (("reminders.household.access",), r"lifts=(?P<lifts>\d+) items=(?P<items>\d+) contact=(?P<contact>[01]) "
     r"audit=(?P<audit>\d+) dead_letters=(?P<dead>\d+)", "household_access"),
    (("labels.import",), N + r" boxes from (?P<source>.+)", "boxes_imported"),
    (("labels.undo",), r"(?P<what>\w+) of (?P<at>\d{4}-\S+)", "undo"),
    (("reminders.file.export",), r"(?P<file>.+): " + N + r" letters, (?P<pages>\d+) pages \(cli\)", "letters_file_cli"),
    (("reminders.household.erase",), ERASED, "household_erase"),
    (("reminders.household.erase",), ERASED + r" note=(?P<note>.*)", "household_erase_note"),
    (("reminders.household.opt_in",), OPPOSED, "opt_in"),
    (("reminders.household.opt_in",), OPPOSED + r"; note=(?P<note>.*)", "opt_in_note"),
    (("truck.model",), MODEL + r" sha256 (?P<sha>\w+) \(was (?P<was>.*)\)", "truck_model"),
    (("truck.model",), MODEL + r" sha256 (?P<sha>\w+) \(was (?P<was>.*)\), rollout (?P<rollout>\d+)",
     "truck_model_rollout"),
    (("model.publish",), MODEL + r", " + N + r" classes, card (?P<card>yes|no)", "model_published_{card}"),
    (("model.download",), MODEL, "model"),
    (("truck.config",), r"no change", "no_change"),
    (("dead_letters.replay",), N + r" replayed: (?P<stored>\d+) stored, (?P<dead>\d+) refused again", "replayed"),
    (("aggregates.rebuild",), r"from (?P<zone>\S+): (?P<lifts>\d+) lifts read, (?P<moved>\d+) moved", "rebuilt"),
    (("bins.import",), r"(?P<rows>\d+) rows, (?P<added>\d+) added, (?P<moved>\d+) moved, (?P<unchanged>\d+) "
     r"unchanged, (?P<removed>\d+) removed, (?P<unaddressed>\d+) unknown address, replace=(?P<replace>True|False)",
     "bins_imported"),
    (("opendata.export",), r"(?P<kind>\w+), " + N + r" rows, (?P<query>.*)", "opendata"),
    (("truck.config",), rf"(?P<changes>{SETTING}(?:, {SETTING})*)", "config_changes"),
    (("model.rollout",), MODEL + rf": canary (?P<canary>{TRUCKS}), then (?P<rest>{TRUCKS}) after (?P<lifts>\d+) "
     r"lifts each", "rollout"),
    (("model.rollout",), MODEL + rf": canary (?P<canary>{TRUCKS}), then (?P<rest>{TRUCKS}) after (?P<lifts>\d+) "
     rf"lifts each; offline canaries (?P<offline>{TRUCKS}): too few trucks online", "rollout_offline"),
    # A rollout's reason (server.fleet.reasons), the fleet page's rollout.reason.* in the journal's words.
    (("model.promote",), r"confirmed by (?P<actor>.+)", "confirmed"),
    (("model.promote",), r"every canary sent at least (?P<lifts>\d+) lifts with the model, none refused: "
     r"(?P<counts>\{.*\})", "canaries_clean"),
    (("model.halt",), r"canary (?P<truck>\S+) refused the model: (?P<detail>.*)", "canary_refused"),
    (("model.halt",), r"ingest refused (?P<count>\d+) message\(s\) from the canaries since the rollout began "
     r"\(see dead letters\)", "ingest_refused"),
    (("model.rollback",), r"rolled back by (?P<actor>[^;]+)", "rolled_back"),
    (("model.rollback",), rf"rolled back by (?P<actor>.+?); previous model unknown for (?P<unknown>{TRUCKS})",
     "rolled_back_unknown"),
    (("dataset.export",), rf"(?P<format>\w+), (?P<since>{DAY})\.\.(?P<until>{DAY}), " + N + r" photos "
     r"\(\{'train': (?P<train>\d+), 'val': (?P<val>\d+), 'test': (?P<test>\d+)\}\)", "dataset"),
    (("dead_letters.replay",), N + r" replayed: (?P<stored>\d+) stored, (?P<dead>\d+) refused again "
     r"\((?P<chosen>.+)\)", "replayed_filter"),
    (("dead_letters.replay",), r"stopped after " + N + r" of (?P<total>\d+): " + REPLAYED, "replay_stopped"),
    (("dead_letters.replay",), r"stopped after " + N + r" of (?P<total>\d+): " + REPLAYED + r" \((?P<chosen>.+)\)",
     "replay_stopped_filter"),
    (("aggregates.rebuild",), r"from (?P<zone>\S+): (?P<lifts>\d+) lifts read, (?P<moved>\d+) moved; (?P<days>\d+) "
     rf"days before (?P<day>{DAY}) keep (?P<kept>\S+): their raw lifts were deleted by retention, only their "
     rf"street totals remain, and (?P=day) runs from midnight (?P=kept) to midnight (?P<new>\S+)", "rebuilt_kept"),
    (("reminders.household.erase",), ERASED + MISSING, "household_erase_missing"),
    (("reminders.household.erase",), ERASED + MISSING + r" note=(?P<note>.*)", "household_erase_missing_note"),
    # The channel's words (an SMTP server's or SMS gateway's answer, mostly French): kept as written.
    (("reminders.send.failed",), r"(?P<error>.+)", "send_failed"),
    (("reminders.send.retry",), r"(?P<error>.+)", "send_retry"),
)
# Optional groups are counts their writer leaves out when 0.
ZERO_WHEN_ABSENT = frozenset({"letters_missing", "sheets_missing"})
PATTERNS = tuple((actions, re.compile(form, re.DOTALL), code) for actions, form, code in FORMS)


def coded(action: str, detail: str | None) -> tuple[str, dict[str, str]] | None:
    """``detail``'s code and values when ``action`` writes it in a known form, else None."""
    if not detail:
        return None
    for actions, pattern, code in PATTERNS:
        if action in actions and (match := pattern.fullmatch(detail)):
            values = {name: value if value is not None else "0" for name, value in match.groupdict().items()
                      if value is not None or name in ZERO_WHEN_ABSENT}
            return code.format(**values), values
    return None
