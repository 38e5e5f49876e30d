"""``trivue reminders ...``: plan (dry run), create, review, send (approved items only), report,
and the households' rights (contacts import, opt-out, erasure), false-detections export.

They act on the server's database (``--config`` / ``TRIVUE_*`` as ``trivue server``) with the
targeting rules of ``--rules FILE`` (else ``$TRIVUE_REMINDERS_RULES``, else the defaults).
Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from server.localtime import local_today
from trivue.cli import CliError


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _common(parser: argparse.ArgumentParser, rules: bool = True) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="server settings (YAML), as trivue server")
    if rules:
        parser.add_argument("--rules", type=Path, metavar="FILE", help="targeting rules (YAML, see reminders/)")
    parser.add_argument("--by", default=None, help="who acts, for the audit log (default: your login name)")


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("reminders", help="targeted sorting reminders: plan, review, send, measure")
    commands = top.add_subparsers(dest="reminders_command", metavar="ACTION", required=True)
    plan = commands.add_parser("plan", help="dry run: who would get what and why (stores nothing)")
    plan.add_argument("--since", type=_day, help="first day of lifts (default: the rules' window)")
    plan.add_argument("--until", type=_day, help="last day of lifts (default: yesterday)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=_plan)
    create = commands.add_parser("create", help="store the plan as a campaign whose items wait for review")
    create.add_argument("--name", default="", help="campaign name")
    create.add_argument("--since", type=_day)
    create.add_argument("--until", type=_day)
    create.add_argument("--street", type=int, help="only what the plan says about this street id")
    create.set_defaults(handler=_create)
    items = commands.add_parser("items", help="a campaign's items and their status")
    items.add_argument("--campaign", type=int, required=True)
    items.set_defaults(handler=_items)
    rev = commands.add_parser("review", help="approve an item, or reject it with a reason")
    rev.add_argument("item", type=int)
    group = rev.add_mutually_exclusive_group(required=True)
    group.add_argument("--approve", action="store_true")
    group.add_argument("--reject", choices=("false_detection", "wrong_household", "not_appropriate", "other"))
    rev.add_argument("--note")
    rev.set_defaults(handler=_review)
    send = commands.add_parser("send", help="send the campaign's approved items (and only those)")
    send.add_argument("--campaign", type=int, required=True)
    send.add_argument("--out", type=Path, help="folder for PDFs (default <data_dir>/reminders/campagne-ID)")
    send.set_defaults(handler=_send)
    report = commands.add_parser("report", help="the campaign's effect: before/after vs matched streets")
    report.add_argument("--campaign", type=int, required=True)
    report.add_argument("--csv", type=Path, help="also write the per-street table here")
    report.set_defaults(handler=_report)
    for parser in (plan, create, items, rev, send, report):
        _common(parser)
    _register_households(commands)


def _register_households(commands: argparse._SubParsersAction) -> None:
    contacts = commands.add_parser("contacts", help="import households' contacts (CSV key,name,email,phone,...)")
    contacts.add_argument("file", type=Path)
    contacts.set_defaults(handler=_contacts)
    optout = commands.add_parser("opt-out", help="a household asks for no more reminders")
    optout.add_argument("key", help="address:<id> or bin:<rfid>")
    optout.add_argument("--note")
    optout.set_defaults(handler=_opt_out)
    erase = commands.add_parser("erase", help="delete a household's personal data on request")
    erase.add_argument("key", help="address:<id> or bin:<rfid>")
    erase.add_argument("--forget-opt-out", action="store_true", help="do not keep the opposition either")
    erase.set_defaults(handler=_erase)
    false = commands.add_parser("false-detections", help="export rejected lifts (CSV) for retraining")
    false.add_argument("file", type=Path)
    false.set_defaults(handler=_false_detections)
    for parser in (contacts, optout, erase, false):
        _common(parser, rules=False)


class _Context:
    """Settings, database session and rules of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from sqlalchemy.orm import Session

        from server.reminder_config import ReminderConfigError, load_rules
        from server.reminder_store import upgrade_reminders
        from server.streets_cli import open_database

        args.database_url = None
        self.engine = open_database(args)
        upgrade_reminders(self.engine)
        from server.config import load_settings

        self.settings = load_settings(args.config)
        try:
            self.rules = load_rules(getattr(args, "rules", None))
        except ReminderConfigError as error:
            raise CliError(str(error)) from None
        self.session = Session(self.engine, expire_on_commit=False)
        self.actor = f"cli:{args.by or getpass.getuser()}"

    @property
    def households(self) -> bool:
        """The server's household-level switch (``server.privacy``): the commands obey it as the API does."""
        return self.settings.household_level

    def require_households(self, what: str) -> None:
        from server.privacy import HouseholdLevelOff

        if not self.households:
            raise CliError(str(HouseholdLevelOff(what)))

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()
        self.engine.dispose()


def _until(args: argparse.Namespace, ctx: _Context) -> date:
    return args.until or local_today(ctx.settings.zone) - timedelta(days=1)


def _plan(args: argparse.Namespace) -> int:
    from server.reminders import make_plan
    from server.reminders_api import plan_json

    with _Context(args) as ctx:
        plan = make_plan(ctx.session, ctx.rules, _until(args, ctx), args.since, households=ctx.households)
    if args.json:
        print(json.dumps(plan_json(plan), ensure_ascii=False, indent=2))
        return 0
    print(f"Levées du {plan.since} au {plan.until} — {len(plan.targets)} message(s), {len(plan.skipped)} écarté(s)"
          + (f" — période calme : {plan.quiet}" if plan.quiet else ""))
    for t in plan.targets:
        print(f"  [{t.kind} {t.action}] {t.label}\n      {t.reason}")
    for s in plan.skipped:
        print(f"  [écarté] {s.label}: {s.reason}")
    print(f"{plan.street_only_lifts} levée(s) contaminée(s) sans foyer sûr (comptées pour leur rue), "
          f"{plan.unmatched_lifts} sans rue.")
    return 0


def _create(args: argparse.Namespace) -> int:
    from server.campaigns import CampaignError, create_campaign
    from server.reminders import make_plan

    with _Context(args) as ctx:
        try:
            plan = make_plan(ctx.session, ctx.rules, _until(args, ctx), args.since, households=ctx.households)
            campaign = create_campaign(ctx.session, plan, args.name, ctx.actor, ctx.rules, args.street)
        except CampaignError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
        count = len(_items_rows(ctx, campaign.id))
        print(f"campagne {campaign.id} « {campaign.name} » : {count} élément(s) à relire (tableau de bord /rappels "
              f"ou `trivue reminders review`)")
    return 0


def _items_rows(ctx: _Context, campaign_id: int) -> list[Any]:
    from server.campaigns import items_of

    return items_of(ctx.session, campaign_id)


def _items(args: argparse.Namespace) -> int:
    from server.auth import audit
    from server.reminder_store import HOUSEHOLD

    with _Context(args) as ctx:
        rows = _items_rows(ctx, args.campaign)
        shown = [i for i in rows if ctx.households or i.kind != HOUSEHOLD]
        # The listing names households (their keys): a read of household-level data, in the trail.
        audit(ctx.session, ctx.actor, "reminders.campaign.read", f"campaign:{args.campaign}",
              f"{len(shown)} items (cli)")
        ctx.session.commit()
        if len(shown) < len(rows):
            print(f"{len(rows) - len(shown)} élément(s) adressé(s) à des foyers masqué(s) : niveau foyer désactivé")
        for item in shown:
            print(f"{item.id:>6}  {item.status:<9} {item.kind:<9} niv.{item.level}  {item.target_key:<22} "
                  f"{item.contaminated}/{item.lifts}  {item.reason[:90]}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from server.campaigns import CampaignError, Decision, review
    from server.reminder_store import HOUSEHOLD, Item

    with _Context(args) as ctx:
        found = ctx.session.get(Item, args.item)
        if found is not None and found.kind == HOUSEHOLD:
            ctx.require_households("Ce rappel est adressé à un foyer")
        try:
            item = review(ctx.session, args.item, Decision(args.approve, args.reject, args.note), ctx.actor)
        except CampaignError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
        print(f"élément {item.id} : {item.status}")
    return 0


def _send(args: argparse.Namespace) -> int:
    from server.campaigns import CampaignError, items_of
    from server.dispatch import Dispatcher
    from server.reminder_store import APPROVED, HOUSEHOLD

    with _Context(args) as ctx:
        if any(i.kind == HOUSEHOLD for i in items_of(ctx.session, args.campaign, APPROVED)):
            ctx.require_households("Cette campagne contient des rappels approuvés adressés à des foyers ; "
                                   "rien n'a été envoyé")
        out = args.out or ctx.settings.data_dir / "reminders" / f"campagne-{args.campaign}"
        dispatcher = Dispatcher(ctx.session, ctx.rules, ctx.settings.evidence_path, out, ctx.actor,
                                local_today(ctx.settings.zone))
        try:
            report = dispatcher.send_campaign(args.campaign)
        except CampaignError as error:
            raise CliError(str(error)) from None
        finally:
            ctx.session.commit()  # what was sent stays recorded, even after an interruption
    if report.deferred:
        print(report.deferred)
        return 1
    print("envoyés : " + (", ".join(f"{k} {v}" for k, v in report.sent.items()) or "aucun (rien d'approuvé ?)"))
    for line in report.failed:
        print(f"  échec : {line}")
    for line in report.skipped:
        print(f"  écarté : {line}")
    for path in report.files:
        print(f"  {path}")
    return 1 if report.failed else 0


def _report(args: argparse.Namespace) -> int:
    from server.campaigns import CampaignError, get_campaign
    from server.effect import effect_csv, measure

    with _Context(args) as ctx:
        try:
            result = measure(ctx.session, get_campaign(ctx.session, args.campaign), ctx.rules.effect,
                             local_today(ctx.settings.zone), ctx.settings.zone)
        except CampaignError as error:
            raise CliError(str(error)) from None
        if not ctx.households:
            from server.privacy import street_level_effect

            result = street_level_effect(result)
        if args.csv:
            from server.auth import audit

            args.csv.write_text(effect_csv(result), encoding="utf-8")
            audit(ctx.session, ctx.actor, "reminders.effect.export", f"campaign:{args.campaign}", str(args.csv))
            ctx.session.commit()
    print(_report_text(result))
    return 0


def _report_text(result: dict[str, Any]) -> str:
    lines = [f"Campagne {result['campaign']} : {result['text']}"]
    for name, group in result.get("groups", {}).items():
        parts = []
        for period in ("before", "after"):
            p = group[period]
            rate = f"{p['rate']:.1%}" if p["rate"] is not None else "–"
            parts.append(f"{period} {rate} [{p['ci'][0]:.1%}–{p['ci'][1]:.1%}] sur {p['lifts']} levées")
        lines.append(f"  {name:<10} ({group['units']} unités) : " + " ; ".join(parts))
    if result.get("intervals", {}).get("did"):
        low, high = result["intervals"]["did"]
        lines.append(f"  différence des évolutions, IC 95 % bootstrap : {low * 100:+.1f} à {high * 100:+.1f} points")
    return "\n".join(lines)


def _contacts(args: argparse.Namespace) -> int:
    from server.households import HouseholdError, import_contacts

    with _Context(args) as ctx:
        ctx.require_households("L'import des contacts des foyers est refusé")
        try:
            report = import_contacts(ctx.session, args.file.read_text(encoding="utf-8-sig"), ctx.actor, str(args.file))
        except (HouseholdError, OSError) as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
    print(f"{report.imported} contact(s) importé(s), {len(report.errors)} refusé(s)")
    for line in report.errors:
        print(f"  {line}")
    return 0


def _opt_out(args: argparse.Namespace) -> int:
    from server.households import HouseholdError, opt_out

    with _Context(args) as ctx:
        try:
            opt_out(ctx.session, args.key, ctx.actor, args.note)
        except HouseholdError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
    print(f"{args.key} : ne recevra plus de rappels")
    return 0


def _erase(args: argparse.Namespace) -> int:
    from server.households import HouseholdError, erase_household

    with _Context(args) as ctx:
        try:
            done = erase_household(ctx.session, args.key, ctx.actor, not args.forget_opt_out)
        except HouseholdError as error:
            raise CliError(str(error)) from None
        ctx.session.commit()
    print(f"{args.key} : {done['contacts']} contact(s) supprimé(s), {done['items']} élément(s) anonymisé(s)")
    return 0


def _false_detections(args: argparse.Namespace) -> int:
    from server.campaigns import export_false_detections

    with _Context(args) as ctx:
        text = export_false_detections(ctx.session, ctx.actor)
        ctx.session.commit()
    args.file.write_text(text, encoding="utf-8")
    print(f"{args.file}: {text.count(chr(10)) - 1} fausse(s) détection(s)")
    return 0
