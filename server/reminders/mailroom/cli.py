"""``trivue reminders print``: a campaign's letters as one PDF for the mail room (``.print_run``).

As the API's ``letters.pdf``: household level only, the letters sorted by commune, postcode, street
and number, blank backs for a printer printing both sides (``--recto``: it prints one side), the
export audited as ``reminders.file.export``, the letters marked printed (``--new-only``: only those
never printed). The file is written as it is joined, under a temporary
name renamed at the end: an interrupted run leaves no half file that looks whole, and marks nothing
(the marking comes after the rename).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from base.errors import CliError
from server.reminders.command_line import (
    CommandContext,
    common_options,
    guarded,
    language,
    os_problem,
    progress_bar,
    say,
)
from server.reminders.phrases import plural


def register_print(commands: argparse._SubParsersAction) -> None:
    printing = commands.add_parser("print", help="the campaign's letters as one PDF to print, in delivery order")
    printing.add_argument("--campaign", type=int, required=True, metavar="ID", help="the campaign's id")
    printing.add_argument("--out", type=Path, required=True, help="the PDF to write (courriers.pdf)")
    printing.add_argument("--recto", action="store_true",
                          help="the printer prints one side only: no blank back after a letter of odd pages")
    printing.add_argument("--new-only", action="store_true",
                          help="only the letters never put in a print file before (a campaign's later letters)")
    printing.add_argument("--json", action="store_true", help="the count as the API gives it")
    printing.set_defaults(handler=guarded(_print))
    common_options(printing, rules=False)


def _print(args: argparse.Namespace) -> int:
    from server.audit import audit
    from server.reminders.campaigns import get_campaign
    from server.reminders.mailroom.print_run import mark_printed, print_run

    with CommandContext(args) as ctx:
        get_campaign(ctx.session, args.campaign)  # an unknown campaign says so, as the other commands do
        ctx.require_households("Les courriers nomment des foyers")
        folder = ctx.settings.data_dir / "reminders" / f"campagne-{args.campaign}"
        run = print_run(ctx.session, args.campaign, folder, recto_verso=not args.recto, only_new=args.new_only)
        separator = " : " if language() == "fr" else ": "
        for line in run.left_out:
            print(f"  {say('écarté')}{separator}{say(line)}")
        if not run.letters:
            raise CliError(f"campagne {args.campaign} : aucun courrier à imprimer"
                           + (f" ({run.already_printed} déjà "
                              f"{plural(run.already_printed, 'imprimé', 'imprimés')})" if run.already_printed else ""))
        partial = args.out.with_name(args.out.name + ".partiel")
        try:
            with partial.open("wb") as out, progress_bar(say("impression des courriers")) as progress:
                for chunk in run.pdf(progress):
                    out.write(chunk)
            os.replace(partial, args.out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise CliError(f"{args.out} : {os_problem(error)}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        audit(ctx.session, ctx.actor, "reminders.file.export", f"campaign:{args.campaign}",
              f"{args.out}: {len(run.letters)} letters, {run.pages} pages (cli)")
        mark_printed(ctx.session, run, ctx.actor)
        ctx.session.commit()
    if args.json:
        from server.reminders.wording import translated_json

        print(json.dumps(translated_json({**run.summary(), "file": str(args.out)}, language()),
                         ensure_ascii=False, indent=2))
        return 0
    sides = "recto verso" if run.recto_verso else "recto seul"
    letters, pages, blank = len(run.letters), run.pages + run.blank_pages, run.blank_pages
    print(say(f"{args.out} : {letters} {plural(letters, 'courrier', 'courriers')}, {pages} "
              f"{plural(pages, 'page', 'pages')} "
              f"dont {blank} {plural(blank, 'blanche', 'blanches')}, {run.sheets} "
              f"{plural(run.sheets, 'feuille', 'feuilles')} "
              f"{sides}"))
    if run.already_printed:
        n = run.already_printed
        again = plural(n, "imprimé", "imprimés") + " de nouveau (--new-only pour les écarter)"
        print(say(f"{n} {plural(n, 'courrier déjà imprimé', 'courriers déjà imprimés')} "
                  + (plural(n, "laissé", "laissés") + " de côté" if run.only_new else again)))
    print(say("ordre : commune, code postal, rue, numéro"))
    for group in run.communes():
        print("  " + say(f"{group['postcode']} {group['commune']} : {group['letters']} "
                         f"{plural(group['letters'], 'courrier', 'courriers')}, "
                         f"à partir du n° {group['first']}"))
    return 0
