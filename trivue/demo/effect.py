"""``trivue demo-effect``: a campaign with a known effect, measured by the server's own report.

The fleet simulator plays eight weeks of weekly collections on the committed Rennes extract;
a quarter of the dirtier streets get a street notice at 17:49, and from ``--delay-days`` after it
the households there make ``--drop`` fewer sorting errors (``trivue.sim.reminder_effect``). The
lifts go through the server's write path into a scratch database, with the sent campaign; then
the effect report (``server.reminders.effect.measure``: matched comparison streets frozen at the
send, difference in differences, bootstrap interval) says what it sees, next to the simulated
truth. Written to ``--out``: the database (open it with ``trivue server`` to see the campaign on
the Rappels page), the weekly plot (``effet.svg``), the report (``effet.json``) and its table
(``effet.csv``). Messages follow ``TRIVUE_LANG`` as ``trivue reminders`` does.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from base.errors import CliError

DATABASE = "trivue.db"
PLOT, REPORT, TABLE = "effet.svg", "effet.json", "effet.csv"


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo-effect", help="simulate a reminder campaign with a known effect and measure it",
                                 description=__doc__.splitlines()[0])
    demo.add_argument("--drop", type=float, default=0.4,
                      help="share of sorting errors reached households stop making (0..1, default 0.4)")
    demo.add_argument("--delay-days", type=float, default=2.0,
                      help="days between the notice and the change of habits (default 2)")
    demo.add_argument("--seed", type=int, default=21, help="the simulated world (default 21)")
    demo.add_argument("--weeks", type=int, default=4, help="weeks of collections before the send, and after (4)")
    demo.add_argument("--rules", type=Path, metavar="FILE", help="targeting rules (effect.*: window, wash-out...)")
    demo.add_argument("--out", type=Path, default=Path("effet-demo"),
                      help="folder for the database, plot and report (default ./effet-demo)")
    demo.add_argument("--replace", action="store_true", help="replace the database a previous run left in --out")
    demo.set_defaults(handler=run_effect_demo)


def run_effect_demo(args: argparse.Namespace) -> int:
    from server.reminders.command_line import guarded

    return guarded(_run)(args)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.drop <= 1:
        raise CliError(f"--drop {args.drop} : attendu une part entre 0 et 1 (0,4 = 40 % d'erreurs en moins)")
    if args.delay_days < 0:
        raise CliError(f"--delay-days {args.delay_days} : attendu 0 ou plus")
    if not 1 <= args.weeks <= 12:
        raise CliError(f"--weeks {args.weeks} : attendu de 1 à 12")
    database = args.out / DATABASE
    if database.exists() and not args.replace:
        raise CliError(f"{database} existe déjà : --replace pour le remplacer, ou un autre --out")


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from server.db import make_engine, utcnow
    from server.migrate import upgrade_database
    from server.reminders.command_line import language, say
    from server.reminders.config import load_targeting
    from server.reminders.effect import effect_csv, effect_text, measure
    from server.reminders.models import Campaign, upgrade_reminders
    from server.reminders.phrases import plural
    from server.reminders.wording import translated_json
    from trivue.sim.reminder_effect import store_trial

    _check(args)
    rules = load_targeting(args.rules)
    args.out.mkdir(parents=True, exist_ok=True)
    database = args.out / DATABASE
    database.unlink(missing_ok=True)
    url = f"sqlite:///{database.resolve()}"
    engine = make_engine(url)
    console = Console(stderr=True)
    try:
        with console.status(say("simulation des collectes et enregistrement des levées…")):
            upgrade_database(engine)
            upgrade_reminders(engine)
            with Session(engine) as session:
                trial, campaign = store_trial(session, args.seed, args.drop, timedelta(days=args.delay_days),
                                              args.weeks)
                session.commit()
                campaign_id = campaign.id
        with console.status(say("mesure de l'effet (appariement, bootstrap)…")), Session(engine) as session:
            found = session.get(Campaign, campaign_id)
            assert found is not None
            report = measure(session, found, rules.effect, utcnow(), rules.household.streams)
            session.commit()
    finally:
        engine.dispose()
    lang = language()
    report = translated_json(report, lang)
    (args.out / REPORT).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (args.out / TABLE).write_text(effect_csv(report), encoding="utf-8")
    (args.out / PLOT).write_text(effect_svg(report, lang), encoding="utf-8")
    streets = len({lift.household.street for lift in trial.lifts})
    print(say(f"Campagne simulée : {len(trial.lifts)} levées dans {streets} rues de Rennes, {2 * args.weeks} "
              f"semaines de collectes ; avis déposé dans {len(trial.treated)} rues le "
              f"{trial.sent_at:%d/%m/%Y à %H:%M} UTC ; {_percent(args.drop)} d'erreurs en moins chez les foyers "
              f"atteints, {_decimal(args.delay_days)} {plural(args.delay_days, 'jour', 'jours')} après."))
    print(say(f"Effet simulé (la vérité) : {_points(trial.truth_did)} points sur le taux de contamination des "
              "rues ciblées."))
    print(effect_text(report, lang))
    estimate = report.get("estimate") or {}
    if estimate.get("ci"):
        low, high = estimate["ci"]
        print(say("L'intervalle contient l'effet simulé." if low <= trial.truth_did <= high
                  else "L'intervalle ne contient pas l'effet simulé (cela arrive dans 5 % des cas environ)."))
    print(say(f"Graphique : {args.out / PLOT} ; rapport : {args.out / REPORT} ; tableau : {args.out / TABLE}"))
    print(say(f"Sur la page Rappels : TRIVUE_DATABASE_URL={url} trivue server --dev --no-ingest, puis /rappels"))
    return 0


def _decimal(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def _percent(share: float) -> str:
    return f"{_decimal(round(share * 100, 1))} %"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}".replace(".", ",")


PLOT_WORDS = {
    "fr": {"title": "Taux de contamination par semaine autour de l'envoi", "targeted": "rues ciblées",
           "control": "rues de comparaison", "sent": "envoi", "weeks": "semaines par rapport à l'envoi",
           "rate": "levées contaminées (%)"},
    "en": {"title": "Contamination rate per week around the send", "targeted": "targeted streets",
           "control": "comparison streets", "sent": "sent", "weeks": "weeks relative to the send",
           "rate": "contaminated lifts (%)"},
}


def effect_svg(report: dict[str, Any], lang: str = "fr", width: int = 720, height: int = 380) -> str:
    """The page's plot as a standalone SVG: weekly rates of targeted and comparison streets, the send
    marked between week -1 and week 0 (each street's own send time)."""
    words = PLOT_WORDS[lang]
    series = report.get("series") or {"weeks": [], "targeted": [], "control": []}
    weeks: list[int] = series["weeks"]
    values = [v for name in ("targeted", "control") for v in series[name] if v is not None]
    top = max(10.0, 10 * ((max(values, default=0) * 100) // 10 + 1))
    left, right, upper, lower = 64, width - 24, 56, height - 56
    first, last = (weeks[0], weeks[-1]) if weeks else (-4, 3)

    def x(week: float) -> float:
        return left + (week - first) / max(last - first, 1) * (right - left)

    def y(rate: float) -> float:
        return lower - rate * 100 / top * (lower - upper)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="22" font-size="15" font-weight="bold">{_escape(words["title"])}</text>']
    for tick in range(0, int(top) + 1, 10):
        ty = lower - tick / top * (lower - upper)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick}</text>')
    for week in weeks:
        parts.append(f'<text x="{x(week):.1f}" y="{lower + 18}" text-anchor="middle">{week}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 12}" text-anchor="middle">'
                 f'{_escape(words["weeks"])}</text>')
    parts.append(f'<text transform="translate(16 {(upper + lower) / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 f'{_escape(words["rate"])}</text>')
    send = x(-0.5)
    parts.append(f'<line x1="{send:.1f}" x2="{send:.1f}" y1="{upper - 6}" y2="{lower}" stroke="#333" '
                 f'stroke-dasharray="5 4"/><text x="{send + 5:.1f}" y="{upper + 4}">{_escape(words["sent"])}</text>')
    for name, colour, dash in (("targeted", "#d7301f", ""), ("control", "#3b6fb6", ' stroke-dasharray="7 4"')):
        points = [(x(w), y(v)) for w, v in zip(weeks, series[name], strict=True) if v is not None]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>')
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>' for px, py in points]
    for n, (name, colour) in enumerate((("targeted", "#d7301f"), ("control", "#3b6fb6"))):
        lx = left + 8 + n * 190
        parts.append(f'<line x1="{lx}" x2="{lx + 26}" y1="40" y2="40" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{lx + 32}" y="44">{_escape(words[name])}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{upper}" y2="{lower}" stroke="#555"/>'
                 f'<line x1="{left}" x2="{right}" y1="{lower}" y2="{lower}" stroke="#555"/></svg>')
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
