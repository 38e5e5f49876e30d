"""Did the campaign work? Contamination before and after each street's send time, targeted
streets against matched untargeted streets (difference in differences), with intervals.

- **Cut-off**: a time, not a date. A targeted street's "before" ends when its first message was
  sent, its "after" starts ``effect.washout_days`` later (0: the next collection counts); its
  comparison streets take the same cut-off. Windows are ``effect.window_days`` long.
- **Controls** (``server.reminder_matching``): matched on the pre-campaign rate, volume, commune,
  stream and collection day when the campaign is sent, stored with the campaign and never redrawn.
- **Balance**: standardised mean differences; above ``effect.max_smd`` the report says the
  streets do not compare and concludes nothing.
- **Estimate** (``server.effect_estimate``): difference in differences of pooled rates, 95 %
  bootstrap interval over matched sets of streets. The verdict says which of "too few lifts",
  "unbalanced" or the estimate holds; the estimate is shown as indicative when it does not.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import utcnow
from server.ingest.models import Lift, StreetDay
from server.reminders.config import EffectRules, HouseholdRules
from server.reminders.effect_estimate import (
    CONCLUSIVE,
    METHOD,
    METHOD_LABEL,
    MatchedSet,
    Unit,
    bootstrap,
    change,
    did,
    matched,
    pooled,
    unit_bootstrap,
    verdict,
    weekly,
)
from server.reminders.matching import Candidate, balance, match
from server.reminders.models import APPROVED, HOUSEHOLD, RETRY, SENDING, SENT, THANKS, Campaign, Item
from server.reminders.phrases import agree
from server.reminders.wording import translate
from server.streets.models import Street
from server.web.csvexport import rows_csv, safe_row
from server.web.reports import wilson

WEEK = timedelta(days=7)


def _treated_streets(items: list[Item], statuses: tuple[str, ...]) -> set[int]:
    return {i.street_id for i in items if i.kind != THANKS and i.street_id is not None and i.status in statuses}


def candidates(session: Session, cut: datetime, rules: EffectRules, streams: list[str] | None) -> dict[str, Candidate]:
    """Every street with lifts in the ``window_days`` days before ``cut`` (days strictly before its day)."""
    first, last = (cut - timedelta(days=rules.window_days)).date(), cut.date() - timedelta(days=1)
    query = (select(StreetDay.street_id, StreetDay.day, StreetDay.stream, StreetDay.lifts, StreetDay.contaminated)
             .where(StreetDay.day >= first, StreetDay.day <= last, StreetDay.street_id != 0)
             # A street's stream and weekday are its most common; a tie goes to the first in this
             # order, the same on both databases (no ORDER BY left it to the query plan).
             .order_by(StreetDay.street_id, StreetDay.stream, StreetDay.day))
    if streams:
        query = query.where(StreetDay.stream.in_(streams))
    lifts: Counter[int] = Counter()
    dirty: Counter[int] = Counter()
    by_stream: dict[int, Counter[str]] = defaultdict(Counter)
    by_day: dict[int, Counter[int]] = defaultdict(Counter)
    for street_id, day, stream, n, c in session.execute(query):
        lifts[street_id] += n
        dirty[street_id] += c
        by_stream[street_id][stream] += n
        by_day[street_id][day.weekday()] += n
    communes = dict(session.execute(select(Street.id, Street.commune).where(Street.id.in_(list(lifts)))).all()) \
        if lifts else {}
    return {f"street:{sid}": Candidate(f"street:{sid}", communes.get(sid) or "", by_stream[sid].most_common(1)[0][0],
                                       by_day[sid].most_common(1)[0][0], lifts[sid], dirty[sid])
            for sid in lifts}


def freeze_controls(session: Session, campaign: Campaign, rules: EffectRules,
                    streams: list[str] | None = None) -> dict[str, Any]:
    """Match controls for targeted streets that have none yet, store them on the campaign, return them.

    Called by the send (so controls are fixed when the campaign goes out) and by the report for
    campaigns sent before matching was stored; streets matched once are never matched again.
    """
    stored = dict(campaign.controls or {"pairs": {}, "covariates": {}})
    pairs: dict[str, list[str]] = dict(stored.get("pairs", {}))
    items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
    treated = _treated_streets(items, (APPROVED, SENDING, SENT, RETRY))
    missing = [f"street:{sid}" for sid in sorted(treated) if f"street:{sid}" not in pairs]
    if not missing or campaign.started_at is None:
        return stored
    pool_all = candidates(session, campaign.started_at, rules, streams)
    targeted = {f"street:{sid}" for sid in _treated_streets(items, (APPROVED, SENDING, SENT, RETRY, "pending",
                                                                      "failed", "rejected", "skipped"))}
    used = {c for cs in pairs.values() for c in cs}
    pool = [c for key, c in sorted(pool_all.items()) if key not in targeted and key not in used]
    found = match([pool_all[k] for k in missing if k in pool_all], pool, rules.controls_per_street)
    covariates = dict(stored.get("covariates", {}))
    for key in missing:
        pairs[key] = found.get(key, [])
        for k in (key, *pairs[key]):
            if k in pool_all:
                c = pool_all[k]
                covariates[k] = {"commune": c.commune, "stream": c.stream, "weekday": c.weekday, "lifts": c.lifts,
                                 "contaminated": c.contaminated}
    stored = {"matched_at": stored.get("matched_at") or utcnow().isoformat(),
              "pre_window_days": rules.window_days, "pairs": pairs, "covariates": covariates}
    campaign.controls = stored
    return stored


def _cuts(items: list[Item], campaign: Campaign) -> dict[int, datetime]:
    """Each targeted street's cut-off: the first message sent on it (else the campaign's first send)."""
    cuts: dict[int, datetime] = {}
    for item in items:
        if item.kind == THANKS or item.street_id is None or item.status != SENT:
            continue
        at = item.sent_at or campaign.started_at
        assert at is not None
        cuts[item.street_id] = min(cuts.get(item.street_id, at), at)
    return cuts


class _Windows:
    def __init__(self, rules: EffectRules, now: datetime) -> None:
        self.length, self.washout, self.now = timedelta(days=rules.window_days), timedelta(days=rules.washout_days), now

    def place(self, at: datetime, cut: datetime) -> str | None:
        if cut - self.length <= at < cut:
            return "before"
        start = cut + self.washout
        if start <= at < start + self.length and at <= self.now:
            return "after"
        return None

    def week(self, at: datetime, cut: datetime) -> int:
        delta = at - cut if at < cut else at - cut - self.washout
        return math.floor(delta / WEEK)


def _street_units(session: Session, cuts: dict[str, datetime], windows: _Windows,
                  streams: list[str] | None) -> dict[str, Unit]:
    ids = [int(key.split(":")[1]) for key in cuts]
    counts: dict[str, dict[str, list[int]]] = {k: {"before": [0, 0], "after": [0, 0]} for k in cuts}
    weeks: dict[str, Counter[tuple[int, int]]] = {k: Counter() for k in cuts}
    if ids:
        first = min(cuts.values()) - windows.length
        last = max(cuts.values()) + windows.washout + windows.length
        query = select(Lift.street_id, Lift.started_at, Lift.contaminated & Lift.overruled_at.is_(None)).where(
            Lift.street_id.in_(ids), Lift.started_at >= first, Lift.started_at < last,
            Lift.view_unusable.is_(None))  # a lift the camera could not see was not judged (wire 1.4)
        if streams:
            query = query.where(Lift.stream.in_(streams))
        for street_id, at, dirty in session.execute(query):
            key = f"street:{street_id}"
            period = windows.place(at, cuts[key])
            if period is None:
                continue
            counts[key][period][0] += 1
            counts[key][period][1] += int(dirty)
            week = windows.week(at, cuts[key])
            weeks[key][(week, 0)] += 1
            weeks[key][(week, 1)] += int(dirty)
    return {k: Unit(k, tuple(v["before"]), tuple(v["after"]),  # type: ignore[arg-type]
                    {w: (weeks[k][(w, 0)], weeks[k][(w, 1)]) for w, m in weeks[k] if m == 0})
            for k, v in counts.items()}


def _household_units(session: Session, items: list[Item], windows: _Windows, streams: list[str] | None,
                     sure: float) -> list[Unit]:
    """Each household's own lifts: its bin's, or its address's matched with ``sure`` confidence (the
    campaign's ``min_address_confidence``; a vaguer fix is its street's lift, as in the plan)."""
    units = []
    for item in items:
        if item.bin_id:
            where = Lift.bin_id == item.bin_id
        elif item.address_id is not None:
            where = (Lift.address_id == item.address_id) & Lift.bin_id.is_(None) & (Lift.match_confidence >= sure)
        else:
            continue  # erased on request
        cut = item.sent_at
        if cut is None:
            continue
        counts = {"before": [0, 0], "after": [0, 0]}
        if streams:  # the streams the household was targeted on, as for the streets
            where = where & Lift.stream.in_(streams)
        for at, dirty in session.execute(select(Lift.started_at, Lift.contaminated & Lift.overruled_at.is_(None)).where(
                where, Lift.view_unusable.is_(None), Lift.started_at >= cut - windows.length,
                Lift.started_at < cut + windows.washout + windows.length)):
            period = windows.place(at, cut)
            if period:
                counts[period][0] += 1
                counts[period][1] += int(dirty)
        units.append(Unit(item.target_key, tuple(counts["before"]), tuple(counts["after"])))  # type: ignore[arg-type]
    return units


def _group(units: list[Unit]) -> dict[str, Any]:
    out: dict[str, Any] = {"units": len(units)}
    for period in ("before", "after"):
        lifts, contaminated = pooled(units, period)
        low, high = wilson(contaminated, lifts)
        out[period] = {"lifts": lifts, "contaminated": contaminated,
                       "rate": contaminated / lifts if lifts else None, "ci": [low, high]}
    out["change"] = change(units)
    return out


def conclude(sets: list[MatchedSet], covariates: dict[str, Candidate], rules: EffectRules, seed: int,
             households: list[Unit] | None = None) -> dict[str, Any]:
    """Groups, intervals, balance, estimate and verdict of matched sets: what the report concludes.

    ``covariates``: the streets as they were matched (pre-campaign), for the balance check.
    Targeted streets without a comparison street stay in the groups (what happened there) but not
    in the estimate, which compares matched sets only (``estimate.unmatched`` counts them).
    """
    usable = matched(sets)
    treated = [s.treated for s in sets]
    controls = [c for s in sets for c in s.controls]
    households = households or []
    groups = {"targeted": _group(treated), "control": _group(controls), "households": _group(households)}
    intervals = bootstrap(sets, rules.bootstrap, seed=seed)
    intervals["households"] = unit_bootstrap(households, rules.bootstrap, seed=seed)
    matched_t = [covariates[u.key] for u in treated if u.key in covariates]
    matched_c = [covariates[u.key] for u in controls if u.key in covariates]
    smds = balance(matched_t, matched_c)
    undefined = tuple(k for k, v in smds.items() if v is None) if matched_t and matched_c else ()
    estimate: dict[str, Any] = {"method": METHOD, "label": METHOD_LABEL, "did": did(sets), "ci": intervals["did"],
                                "draws": rules.bootstrap, "matched_sets": len(usable),
                                "unmatched": len(sets) - len(usable)}
    outcome = verdict(groups, estimate, smds, rules, undefined)
    estimate["conclusive"] = outcome["status"] in CONCLUSIVE
    return {**outcome, "estimate": estimate, "groups": groups, "intervals": intervals,
            "balance": {**smds, "max_smd": rules.max_smd,
                        "ok": all(v is not None and abs(v) <= rules.max_smd for v in smds.values())}}


def measure(session: Session, campaign: Campaign, rules: EffectRules, now: datetime | Any,
            streams: list[str] | None = None) -> dict[str, Any]:
    """The campaign's effect report (JSON-ready); ``status`` ``not_sent`` until the first send.

    ``now`` bounds the after period (a ``date`` means the end of that day, UTC).
    """
    if campaign.started_at is None:
        return {"campaign": campaign.id, "status": "not_sent", "text": "Campagne pas encore envoyée : rien à mesurer."}
    if not isinstance(now, datetime):
        now = datetime.combine(now + timedelta(days=1), datetime.min.time(), campaign.started_at.tzinfo)
    frozen = freeze_controls(session, campaign, rules, streams)
    # in one order on every run: the households' rows and their bootstrap draws follow it
    items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id).order_by(Item.id)))
    windows = _Windows(rules, now)
    street_cuts = _cuts(items, campaign)
    pairs = {k: v for k, v in frozen.get("pairs", {}).items() if int(k.split(":")[1]) in street_cuts}
    cuts = {f"street:{sid}": at for sid, at in street_cuts.items()}
    for key, controls in pairs.items():
        for control in controls:
            cuts.setdefault(control, cuts[key])  # a control is cut where its targeted street is
    units = _street_units(session, cuts, windows, streams)
    sets = [MatchedSet(units[f"street:{sid}"], tuple(units[c] for c in pairs.get(f"street:{sid}", [])))
            for sid in sorted(street_cuts)]
    sure = (campaign.rules or {}).get("household", {}).get("min_address_confidence",
                                                           HouseholdRules().min_address_confidence)
    households = _household_units(session, [i for i in items if i.status == SENT and i.kind == HOUSEHOLD], windows,
                                  streams, sure)
    covariates = frozen.get("covariates", {})
    found = conclude(sets, {k: Candidate(k, v["commune"], v["stream"], v["weekday"], v["lifts"], v["contaminated"])
                            for k, v in covariates.items()}, rules, campaign.id, households)
    treated = [s.treated for s in sets]
    controls = [c for s in sets for c in s.controls]
    first, last = min(street_cuts.values(), default=campaign.started_at), max(street_cuts.values(),
                                                                              default=campaign.started_at)
    after_end = min(last + windows.washout + windows.length, now)
    # Whole weeks inside the windows: 30 days drew their last 2 days as week -5 (and week 4 after), a
    # point made of a fraction of the streets' collections that swung far from its neighbours.
    span = max(1, rules.window_days // 7)
    week_numbers = list(range(-span, span))
    series_t, lifts_t = weekly(treated, week_numbers, rules.min_lifts)
    series_c, lifts_c = weekly(controls, week_numbers, rules.min_lifts)
    return {"campaign": campaign.id, "name": campaign.name, **found,
            "cut_off": campaign.started_at.isoformat(), "washout_days": rules.washout_days,
            "windows": {"before": [(first - windows.length).isoformat(), last.isoformat()],
                        "after": [(first + windows.washout).isoformat(), after_end.isoformat()]},
            "partial": now < last + windows.washout + windows.length,
            "matching": {"matched_at": frozen.get("matched_at"), "per_street": rules.controls_per_street},
            "matches": pairs,
            "series": {"weeks": week_numbers, "targeted": series_t, "control": series_c,
                       "targeted_lifts": lifts_t, "control_lifts": lifts_c, "min_lifts": rules.min_lifts},
            "units": [_unit_row("targeted", u) for u in treated] + [_unit_row("control", u) for u in controls]
            + [_unit_row("household", u) for u in households]}


def _unit_row(group: str, unit: Unit) -> dict[str, Any]:
    (nb, cb), (na, ca) = unit.before, unit.after
    return {"group": group, "unit": unit.key, "lifts_before": nb, "contaminated_before": cb,
            "rate_before": round(cb / nb, 4) if nb else None, "lifts_after": na, "contaminated_after": ca,
            "rate_after": round(ca / na, 4) if na else None}


def effect_csv(report: dict[str, Any]) -> str:
    """The per-unit table, then a ``# verdict`` line; unit keys hold RFID tags read on trucks, so every
    cell goes through ``server.csvexport`` (and the verdict is quoted by the csv module, not by hand)."""
    columns = ["group", "unit", "lifts_before", "contaminated_before", "rate_before", "lifts_after",
               "contaminated_after", "rate_after"]
    out = io.StringIO()
    out.write(rows_csv(columns, report.get("units", [])))
    csv.writer(out).writerow(safe_row(["# verdict", report.get("status"), report.get("text", "")]))
    return out.getvalue()


EFFECT_WORDS = {
    "fr": {"targeted": "rues ciblées", "control": "rues témoins", "households": "foyers ciblés", "before": "avant",
           "after": "après", "units": "unités", "unit": "unité", "over": "sur {n} {n|levée|levées}", "rate": "taux",
           "volume": "volume",
           "balance": "équilibre avant (écart standardisé, seuil {max})", "estimate": "estimation",
           "points": "{did} points, IC 95 % {low} à {high}", "method": "méthode : {label} ({draws} tirages)",
           "indicative": " — indicatif seulement, ne permet pas de conclure (voir ci-dessus)",
           "undefined": "non défini"},
    "en": {"targeted": "targeted streets", "control": "control streets", "households": "targeted households",
           "before": "before", "after": "after", "units": "units", "unit": "unit", "over": "over {n} {n|lift|lifts}",
           "rate": "rate",
           "volume": "volume", "balance": "balance before (standardised difference, threshold {max})",
           "estimate": "estimate", "points": "{did} points, 95 % CI {low} to {high}",
           "method": "method: {label} ({draws} draws)",
           "indicative": " — indicative only, does not support a conclusion (see above)",
           "undefined": "undefined"},
}


def effect_text(report: dict[str, Any], lang: str = "fr") -> str:
    """The report as the CLI prints it, in ``lang``: the verdict first, then what it rests on."""
    words, sep = EFFECT_WORDS[lang], (" : " if lang == "fr" else ": ")

    def number(value: float, spec: str) -> str:
        text = format(value, spec)
        return text.replace(".", ",") if lang == "fr" else text

    lines = [translate(f"Campagne {report['campaign']} : {report['text']}", lang)]
    if report.get("status") == "not_sent":
        return "\n".join(lines)
    def percent(value: float) -> str:
        return number(value * 100, ".1f") + (" %" if lang == "fr" else "%")

    for name, group in report["groups"].items():
        if not group["units"]:  # no household in a street-level campaign: nothing to say about them
            continue
        parts = []
        for period in ("before", "after"):
            p = group[period]
            rate = percent(p["rate"]) if p["rate"] is not None else "–"
            # no lift yet (just sent): no interval, as on the page; Wilson's 0-100 % would say nothing
            ci = f" [{percent(p['ci'][0])}–{percent(p['ci'][1])}]" if p["lifts"] else ""
            # "{n|lift|lifts}": the form for this count, French 0 and 1 singular (``phrases.plural``)
            over = agree(words["over"], {"n": str(p["lifts"])}, lang)
            parts.append(f"{words[period]} {rate}{ci} " + over.format(n=p["lifts"]))
        units = words["unit" if group["units"] == 1 else "units"]
        lines.append(f"  {words[name]:<19} ({group['units']} {units}){sep}"
                     + sep.replace(":", ";").join(parts))
    b = report["balance"]
    pairs = (("rate", b["rate"]), ("volume", b["log_lifts"]))
    smd = ", ".join(f"{words[k]} {words['undefined'] if v is None else number(v, '+.2f')}" for k, v in pairs
                    ) if any(v is not None for _, v in pairs) else ""
    lines.append(f"  {words['balance'].format(max=number(b['max_smd'], '.2f'))}{sep}{smd or '–'}")
    estimate = report["estimate"]
    if estimate["did"] is not None and estimate["ci"] is not None:
        low, high = estimate["ci"]
        status = "" if estimate["conclusive"] else words["indicative"]
        lines.append(f"  {words['estimate']}{sep}" + words["points"].format(
            did=number(estimate["did"] * 100, "+.1f"), low=number(low * 100, "+.1f"), high=number(high * 100, "+.1f"))
            + status)
    lines.append("  " + words["method"].format(label=translate(estimate["label"], lang), draws=estimate["draws"]))
    return "\n".join(lines)
