"""``trivue reminders contacts | opt-out | opt-in | erase | access``: the households' rights on the
command line, as the API's ``/api/reminders/households/...`` (``server.reminders.households``).

An opposition, its lifting and an erasure are honoured whatever the household-level switch says;
importing contacts needs it. Each leaves an entry in the audit log. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from base.errors import CliError
from server.reminders.command_line import CommandContext, common_options, guarded, os_problem, say
from server.reminders.phrases import plural


def register_households(commands: argparse._SubParsersAction) -> None:
    contacts = commands.add_parser("contacts", help="import households' contacts (CSV key,name,email,phone,...)")
    contacts.add_argument("file", type=Path, help="CSV key,name,email,phone,postal_address (or French names)")
    contacts.set_defaults(handler=guarded(_contacts))
    optout = commands.add_parser("opt-out", help="a household asks for no more reminders")
    optout.add_argument("key", help="address:<id> or bin:<rfid>")
    optout.add_argument("--note", help="the request's reference, kept in the audit log and on the opposition")
    optout.set_defaults(handler=guarded(_opt_out))
    optin = commands.add_parser("opt-in", help="lift a household's opt-out: reminders from the next plan")
    optin.add_argument("key", help="address:<id> or bin:<rfid>")
    optin.add_argument("--note", help="the request's reference (or why the key was wrong), kept in the audit log")
    optin.set_defaults(handler=guarded(_opt_in))
    erase = commands.add_parser("erase", help="delete a household's personal data on request")
    erase.add_argument("key", help="address:<id> or bin:<rfid>")
    erase.add_argument("--forget-opt-out", action="store_true", help="do not keep the opposition either")
    erase.add_argument("--note", help="the request's reference, kept in the audit log and on the opposition")
    erase.set_defaults(handler=guarded(_erase))
    access = commands.add_parser("access", help="everything held about a household, for its request (art. 15)")
    access.add_argument("key", help="address:<id> or bin:<rfid>")
    access.add_argument("--out", type=Path, required=True, help="file to give the household (French text)")
    access.add_argument("--json", action="store_true", help="write JSON (French keys) instead of text")
    access.set_defaults(handler=guarded(_access))
    for parser in (contacts, optout, optin, erase, access):
        common_options(parser, rules=False)


def _contacts(args: argparse.Namespace) -> int:
    from server.reminders.households import HouseholdError, import_contacts

    with CommandContext(args) as ctx:
        ctx.require_households("L'import des contacts des foyers est refusé")
        try:
            report = import_contacts(ctx.session, args.file.read_bytes(), ctx.actor, str(args.file))
        except HouseholdError as error:
            raise CliError(str(error)) from None
        except OSError as error:
            raise CliError(f"{args.file} : {os_problem(error)}") from None
        ctx.session.commit()
    print(say(report.summary()))
    for line in report.errors:
        print(f"  {say(line)}")
    # Some lines in, some refused: a partial import did its work (exit 0, refusals listed above).
    # Every line refused: nothing happened, and a script must not read that as success.
    if report.errors and not (report.imported or report.updated):
        refused = len(report.errors)
        raise CliError(say(f"{args.file} : aucun contact importé, {refused} "
                           f"{plural(refused, 'ligne refusée', 'lignes refusées')} "
                           "(détail ci-dessus)"))
    return 0


def _opt_out(args: argparse.Namespace) -> int:
    from server.reminders.households import HouseholdError, known_household, opt_out, unknown_note

    with CommandContext(args) as ctx:
        try:
            key = opt_out(ctx.session, args.key, ctx.actor, args.note)
        except HouseholdError as error:
            raise CliError(str(error)) from None
        notes = [] if known_household(ctx.session, key) else [say(unknown_note(key))]  # recorded; a typo shows
        ctx.session.commit()
    print(say(f"{key} : ne recevra plus de rappels"), *notes, sep="\n")
    return 0


def _opt_in(args: argparse.Namespace) -> int:
    from server.reminders.households import opt_in, opted_in

    with CommandContext(args) as ctx:
        key = opt_in(ctx.session, args.key, ctx.actor, args.note)  # no opposition: a refusal, exit code 2
        ctx.session.commit()
    print(say(opted_in(key)))
    return 0


def _erase(args: argparse.Namespace) -> int:
    from server.reminders.households import HouseholdError, erase_household

    with CommandContext(args) as ctx:
        try:
            done = erase_household(ctx.session, args.key, ctx.actor, not args.forget_opt_out, args.note,
                                   ctx.settings.data_dir / "reminders")
        except HouseholdError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
    contacts, items, letters, dead, sheets = (done[k] for k in ("contacts", "items", "letters", "dead_letters",
                                                                 "route_sheets"))
    print(say(f"{args.key} : {contacts} {plural(contacts, 'contact supprimé', 'contacts supprimés')}, {items} "
              f"{plural(items, 'élément anonymisé', 'éléments anonymisés')}, {letters} "
              f"{plural(letters, 'courrier supprimé', 'courriers supprimés')}, {dead} "
              f"{plural(dead, 'message refusé vidé', 'messages refusés vidés')}, {sheets} "
              + plural(sheets, "feuille de route réécrite ou supprimée", "feuilles de route réécrites ou supprimées")))
    problems = done["letters_missing"] + done["route_sheets_missing"]
    for problem in problems:  # the data are erased, these files may not be: exit code 1
        print(say(problem), file=sys.stderr)
    return 1 if problems else 0


def _access(args: argparse.Namespace) -> int:
    from server.reminders.access import access_text, household_access
    from server.reminders.households import HouseholdError

    with CommandContext(args) as ctx:
        try:
            report = household_access(ctx.session, args.key, ctx.actor, ctx.settings.zone,
                                      ctx.rules.household.min_address_confidence)
        except HouseholdError as error:
            raise CliError(str(error)) from None
        text = json.dumps(report, ensure_ascii=False, indent=2) + "\n" if args.json else access_text(report)
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as error:
            raise CliError(f"{args.out} : {os_problem(error)}") from None
        ctx.session.commit()  # audited only once the file is written
    lifts, items, dead = len(report["levées"]), len(report["rappels"]), len(report["messages_refusés"])
    print(say(f"{args.out} : {lifts} {plural(lifts, 'levée', 'levées')}, {items} {plural(items, 'rappel', 'rappels')}, "
              f"{int(report['contact'] is not None)} contact, {dead} "
              f"{plural(dead, 'message refusé', 'messages refusés')}"))
    return 0
