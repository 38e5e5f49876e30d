"""``trivue reminders ...``: plan (dry run), create, review, send (approved items only), report,
print (the letters as one PDF, ``server.reminders.mailroom.cli``), the households' rights (contacts
import, opt-out and opt-in, erasure, access: ``server.reminders.rights.cli``), false-detections export.

They act on the server's database (``--config`` / ``TRIVUE_*`` as ``trivue server``) with the
targeting rules of ``--rules FILE`` (else ``$TRIVUE_REMINDERS_RULES``, else the defaults).
Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from base.errors import CliError
from server.reminders.command_line import (
    CommandContext,
    common_options,
    day,
    guarded,
    language,
    progress_bar,
    say,
    until_day,
)
from server.reminders.phrases import plural
from server.reminders.rights.cli import register_households


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser(
        "reminders", help="targeted sorting reminders: plan, review, send, measure",
        description="Targeted sorting reminders on the server's database. Messages are in English, as every "
                    "trivue command; TRIVUE_LANG=fr prints them in French. What goes to households (letters, "
                    "e-mails, SMS, route sheets, the access file) is French whatever the language.")
    commands = top.add_subparsers(dest="reminders_command", metavar="ACTION", required=True)
    plan = commands.add_parser("plan", help="dry run: who would get what and why (stores nothing)")
    plan.add_argument("--since", type=day, help="first day of lifts (default: the rules' window)")
    plan.add_argument("--until", type=day, help="last day of lifts (default: yesterday)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=guarded(_plan))
    create = commands.add_parser("create", help="store the plan as a campaign whose items wait for review")
    create.add_argument("--name", default="", help="campaign name")
    create.add_argument("--since", type=day, help="first day of lifts (default: the rules' window)")
    create.add_argument("--until", type=day, help="last day of lifts (default: yesterday)")
    create.add_argument("--street", type=int, help="only what the plan says about this street id")
    create.set_defaults(handler=guarded(_create))
    items = commands.add_parser("items", help="a campaign's items and their status")
    items.add_argument("--campaign", type=int, required=True, metavar="ID", help="the campaign's id")
    items.set_defaults(handler=guarded(_items))
    rev = commands.add_parser("review", help="approve an item, or reject it with a reason")
    rev.add_argument("item", type=int, help="the item's id (`trivue reminders items`)")
    group = rev.add_mutually_exclusive_group(required=True)
    group.add_argument("--approve", action="store_true", help="the item may be sent")
    group.add_argument("--reject", choices=("false_detection", "wrong_household", "not_appropriate", "other"),
                       help="the item is not sent, for this reason (false_detection: its lifts go to "
                            "`trivue reminders false-detections`, for retraining)")
    rev.add_argument("--note", help="why, kept with the item (and its false detections)")
    rev.set_defaults(handler=guarded(_review))
    send = commands.add_parser("send", help="send the campaign's approved items (and only those)")
    send.add_argument("--campaign", type=int, required=True, metavar="ID", help="the campaign's id")
    send.add_argument("--out", type=Path, help="folder for PDFs (default <data_dir>/reminders/campagne-ID)")
    send.set_defaults(handler=guarded(_send))
    retry = commands.add_parser("retry", help="failed items back to approved, then send them")
    retry.add_argument("--campaign", type=int, required=True, metavar="ID", help="the campaign's id")
    retry.add_argument("--item", type=int, metavar="ID", help="only this item")
    retry.add_argument("--out", type=Path, help="folder for PDFs (default <data_dir>/reminders/campagne-ID)")
    retry.set_defaults(handler=guarded(_retry))
    report = commands.add_parser("report", help="the campaign's effect: before/after vs matched streets")
    report.add_argument("--campaign", type=int, required=True, metavar="ID", help="the campaign's id")
    report.add_argument("--csv", type=Path, help="also write the per-street table here")
    report.add_argument("--json", action="store_true", help="the report as the API and the page get it")
    report.set_defaults(handler=guarded(_report))
    for parser in (plan, create, items, rev, send, retry, report):
        common_options(parser)
    register_households(commands)  # contacts, opt-out, opt-in, erase, access: the households' rights
    _register_false_detections(commands)
    from server.reminders.mailroom.cli import register_print

    register_print(commands)


def _register_false_detections(commands: argparse._SubParsersAction) -> None:
    false = commands.add_parser("false-detections", help="export rejected lifts (CSV) for retraining")
    false.add_argument("file", type=Path, help="the CSV to write")
    false.set_defaults(handler=guarded(_false_detections))
    common_options(false, rules=False)


def _plan(args: argparse.Namespace) -> int:
    from server.reminders.api import plan_json
    from server.reminders.plan import make_plan

    with CommandContext(args) as ctx:
        plan = make_plan(ctx.session, ctx.rules, until_day(args, ctx), args.since, households=ctx.households)
    if args.json:
        from server.reminders.wording import translated_json

        print(json.dumps(translated_json({**plan_json(plan), "household_level": ctx.households}, language()),
                         ensure_ascii=False, indent=2))
        return 0
    level = "foyer (adresses et bacs)" if ctx.households else "rue (niveau foyer désactivé : TRIVUE_HOUSEHOLD_LEVEL)"
    print(say(f"Levées du {plan.since:%d/%m/%Y} au {plan.until:%d/%m/%Y} — niveau {level} — "
              f"{len(plan.targets)} {plural(len(plan.targets), 'message', 'messages')}, {len(plan.skipped)} "
              f"{plural(len(plan.skipped), 'écarté', 'écartés')}"
              + (f" — période calme : {plan.quiet}" if plan.quiet else "")))
    from server.reminders.models import KIND_LABELS

    for t in plan.targets:
        print(f"  [{say(KIND_LABELS.get(t.kind, t.kind))}, {say(t.action)}] {say(t.label)}\n      {say(t.reason)}")
    for s in plan.skipped:
        print(f"  [{say('écarté')}] {say(s.label)}{' : ' if language() == 'fr' else ': '}{say(s.reason)}")
    unsure = plan.street_only_lifts
    print(say(f"{unsure} {plural(unsure, 'levée contaminée', 'levées contaminées')} sans foyer sûr (comptées pour "
              f"leur rue), {plan.unmatched_lifts} sans rue."))
    return 0


def _create(args: argparse.Namespace) -> int:
    from server.reminders.campaigns import CampaignError, create_campaign
    from server.reminders.plan import make_plan

    with CommandContext(args) as ctx:
        try:
            plan = make_plan(ctx.session, ctx.rules, until_day(args, ctx), args.since, households=ctx.households)
            campaign = create_campaign(ctx.session, plan, args.name, ctx.actor, ctx.rules, args.street)
        except CampaignError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
        count = len(_items_rows(ctx, campaign.id))
        level = "foyer" if ctx.households else "rue (niveau foyer désactivé)"
        print(say(f"campagne {campaign.id} « {campaign.name} » (niveau {level}) : {count} "
                  f"{plural(count, 'élément', 'éléments')} à relire "
                  f"(tableau de bord /rappels ou `trivue reminders review`)"))
    return 0


def _items_rows(ctx: CommandContext, campaign_id: int) -> list[Any]:
    from server.reminders.campaigns import items_of

    return items_of(ctx.session, campaign_id)


def _items(args: argparse.Namespace) -> int:
    from server.audit import audit
    from server.reminders.campaigns import get_campaign
    from server.reminders.models import CHANNEL_LABELS, HOUSEHOLD, KIND_LABELS, STATUS_LABELS

    with CommandContext(args) as ctx:
        get_campaign(ctx.session, args.campaign)  # an unknown campaign says so, as send and report do
        rows = _items_rows(ctx, args.campaign)
        shown = [i for i in rows if ctx.households or i.kind != HOUSEHOLD]
        # The listing names households (their keys): a read of household-level data, in the trail.
        audit(ctx.session, ctx.actor, "reminders.campaign.read", f"campaign:{args.campaign}",
              f"{len(shown)} items (cli)")
        ctx.session.commit()
        if len(shown) < len(rows):
            hidden = len(rows) - len(shown)
            print(say(f"{hidden} {plural(hidden, 'élément adressé', 'éléments adressés')} à des foyers "
                      f"{plural(hidden, 'masqué', 'masqués')} : "
                      "niveau foyer désactivé"))
        if not shown:
            print(say(f"campagne {args.campaign} : aucun élément"))
        level = "niv." if language() == "fr" else "lvl "
        for item in shown:
            channel = f" ({say(CHANNEL_LABELS.get(item.channel, item.channel))})" \
                if item.channel and item.status == "sent" else ""
            print(f"{item.id:>6}  {say(STATUS_LABELS.get(item.status, item.status)) + channel:<20} "
                  f"{say(KIND_LABELS.get(item.kind, item.kind)):<12} {level}{item.level}  {item.target_key:<22} "
                  f"{item.contaminated}/{item.lifts}  {say(item.reason)[:90]}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from server.reminders.campaigns import CampaignError, Decision, review
    from server.reminders.models import HOUSEHOLD, Item

    with CommandContext(args) as ctx:
        found = ctx.session.get(Item, args.item)
        if found is not None and found.kind == HOUSEHOLD:
            ctx.require_households("Ce rappel est adressé à un foyer")
        try:
            item = review(ctx.session, args.item, Decision(args.approve, args.reject, args.note), ctx.actor)
        except CampaignError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
        from server.reminders.models import STATUS_LABELS

        print(say(f"élément {item.id} : {STATUS_LABELS.get(item.status, item.status)}"))
    return 0


def _send(args: argparse.Namespace, requeue_failed: bool = False) -> int:
    from server.reminders.campaigns import CampaignError, get_campaign, items_of
    from server.reminders.dispatch import Dispatcher
    from server.reminders.models import FAILED, HOUSEHOLD
    from server.reminders.sending import OUTGOING, requeue

    with CommandContext(args) as ctx:
        try:
            get_campaign(ctx.session, args.campaign)
        except CampaignError as error:
            raise CliError(str(error)) from None
        going = (FAILED, *OUTGOING) if requeue_failed else OUTGOING  # retries go out too, not approved only
        if any(i.kind == HOUSEHOLD and i.status in going for i in items_of(ctx.session, args.campaign)):
            ctx.require_households("Cette campagne contient des rappels approuvés adressés à des foyers ; "
                                   "rien n'a été envoyé")
        if requeue_failed:
            requeued = requeue(ctx.session, args.campaign, ctx.actor, args.item)
            if args.item is not None and not requeued:  # as the API: a retry of nothing is no success
                raise CliError(f"pas d'élément {args.item} en échec dans la campagne {args.campaign}")
            ctx.session.commit()
            print(say(f"{len(requeued)} {plural(len(requeued), 'élément', 'éléments')} remis à envoyer"))
        out = args.out or ctx.settings.data_dir / "reminders" / f"campagne-{args.campaign}"
        from server.localtime import local_today
        from server.reminders.templates import Retention

        dispatcher = Dispatcher(ctx.session, ctx.rules, ctx.settings.evidence_path, out, ctx.actor,
                                local_today(ctx.settings.zone), sorting_rules=ctx.sorting_rules,
                                zone=ctx.settings.zone, retention=Retention.of(ctx.settings))
        try:
            with progress_bar(say("envoi des rappels")) as progress:
                report = dispatcher.send_campaign(args.campaign, progress=progress)
        finally:
            ctx.session.commit()  # what was sent stays recorded, even after an interruption
    if report.deferred:
        print(say(report.deferred))
        return 1
    from server.reminders.models import CHANNEL_LABELS

    # "nothing approved?" only when the send met nothing at all: SMS held until the morning are approved
    nothing = "aucun" if report.waiting or report.failed or report.retrying or report.skipped else \
        "aucun (rien d'approuvé ?)"
    print(say("envoyés : " + (", ".join(f"{say(CHANNEL_LABELS.get(k, k))} {v}" for k, v in report.sent.items())
                              or nothing)))
    separator = " : " if language() == "fr" else ": "
    for label, lines in (("repris après interruption", report.recovered), ("échec", report.failed),
                         ("nouvel essai prévu", report.retrying), ("écarté", report.skipped),
                         ("en attente", report.waiting)):
        for line in lines:
            print(f"  {say(label)}{separator}{say(line)}")
    if len(report.files) > 10:  # a campaign's 5,000 letters are a folder, not 5,000 lines
        print("  " + say(f"{len(report.files)} fichiers PDF dans {report.files[0].parent}"))
    for path in report.files if len(report.files) <= 10 else ():
        print(f"  {path}")
    return 1 if report.failed or report.retrying else 0


def _retry(args: argparse.Namespace) -> int:
    return _send(args, requeue_failed=True)


def _report(args: argparse.Namespace) -> int:
    from server.db import utcnow
    from server.reminders.campaigns import CampaignError, get_campaign
    from server.reminders.effect import effect_csv, effect_text, measure

    with CommandContext(args) as ctx:
        try:
            campaign = get_campaign(ctx.session, args.campaign)
        except CampaignError as error:
            raise CliError(str(error)) from None
        result = measure(ctx.session, campaign, ctx.rules.effect, utcnow(), ctx.rules.household.streams)
        ctx.session.commit()  # controls of a campaign sent before they were stored: now frozen
        if not ctx.households:
            from server.web.privacy import street_level_effect

            result = street_level_effect(result)
        if args.csv:
            from server.audit import audit

            args.csv.write_text(effect_csv(result), encoding="utf-8")
            audit(ctx.session, ctx.actor, "reminders.effect.export", f"campaign:{args.campaign}", str(args.csv))
            ctx.session.commit()
    # --json prints what GET /api/reminders/campaigns/{id}/effect answers, byte for byte the same data
    if args.json:  # the same translation as the API's for an English page
        from server.reminders.wording import translated_json

        # allow_nan=False: strict JSON, as the API answers it (a NaN or an infinity is no JSON at all)
        print(json.dumps(translated_json(result, language()), ensure_ascii=False, indent=2, allow_nan=False))
    else:
        print(effect_text(result, language()))
    return 0


def _false_detections(args: argparse.Namespace) -> int:
    from server.reminders.campaigns import export_false_detections

    with CommandContext(args) as ctx:
        text = export_false_detections(ctx.session, ctx.actor, ctx.sorting_rules)
        ctx.session.commit()
    args.file.write_text(text, encoding="utf-8")
    found = text.count(chr(10)) - 1
    print(say(f"{args.file} : {found} {plural(found, 'fausse détection', 'fausses détections')}"))
    return 0
