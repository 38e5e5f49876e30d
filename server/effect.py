"""Did the campaign work? Contamination before and after the first send, targeted vs matched
untargeted streets (difference in differences), with confidence intervals.

Each targeted street gets ``controls_per_street`` untargeted streets that looked alike before the
campaign (nearest on pre-campaign rate and, on a log scale, number of lifts). Rates are pooled
per group with 95 % Wilson intervals; the changes and their difference get a cluster bootstrap
interval (streets resampled, as lifts of one street are not independent). Below ``min_lifts`` in
any group and period the verdict is "too few lifts to conclude", whatever the numbers say.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, timedelta, tzinfo
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from server.csvexport import rows_csv, safe_row
from server.reminder_config import EffectRules
from server.reminder_store import HOUSEHOLD, SENT, THANKS, Campaign, Item
from server.reports import wilson
from server.store import Lift, StreetDay

Counts = tuple[int, int]  # (lifts, contaminated)


@dataclass(frozen=True, slots=True)
class Unit:
    """A street (or household) with its lifts before and after the cut-off."""

    key: str
    before: Counts
    after: Counts


def _rate(units: list[Unit], period: str) -> Counts:
    lifts = sum(getattr(u, period)[0] for u in units)
    return lifts, sum(getattr(u, period)[1] for u in units)


def _change(units: list[Unit]) -> float | None:
    (nb, cb), (na, ca) = _rate(units, "before"), _rate(units, "after")
    return ca / na - cb / nb if na and nb else None


def bootstrap(treated: list[Unit], controls: list[Unit], draws: int, seed: int) -> dict[str, list[float] | None]:
    """95 % percentile intervals of the treated change, control change and their difference."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {"treated": [], "control": [], "did": []}
    for _ in range(draws):
        t = _change([rng.choice(treated) for _ in treated]) if treated else None
        c = _change([rng.choice(controls) for _ in controls]) if controls else None
        if t is not None:
            samples["treated"].append(t)
        if c is not None:
            samples["control"].append(c)
        if t is not None and c is not None:
            samples["did"].append(t - c)
    return {k: _percentiles(v) if len(v) >= draws // 2 else None for k, v in samples.items()}


def _percentiles(values: list[float]) -> list[float]:
    values = sorted(values)
    return [values[int(0.025 * (len(values) - 1))], values[math.ceil(0.975 * (len(values) - 1))]]


def match_controls(treated: list[Unit], pool: list[Unit], per_street: int) -> dict[str, list[Unit]]:
    """Nearest untargeted streets on pre-campaign rate and log lifts, each used once."""
    free = [u for u in pool if u.before[0] > 0 and u.after[0] > 0]
    chosen: dict[str, list[Unit]] = {}
    for unit in sorted(treated, key=lambda u: -u.before[0]):  # the biggest streets choose first
        if unit.before[0] == 0:
            continue
        rate = unit.before[1] / unit.before[0]
        free.sort(key=lambda c: abs(c.before[1] / c.before[0] - rate) / 0.05
                  + abs(math.log(c.before[0]) - math.log(unit.before[0])) / math.log(2))
        chosen[unit.key], free = free[:per_street], free[per_street:]
    return chosen


def _group(units: list[Unit]) -> dict[str, Any]:
    out: dict[str, Any] = {"units": len(units)}
    for period in ("before", "after"):
        lifts, contaminated = _rate(units, period)
        low, high = wilson(contaminated, lifts)
        out[period] = {"lifts": lifts, "contaminated": contaminated,
                       "rate": contaminated / lifts if lifts else None, "ci": [low, high]}
    out["change"] = _change(units)
    return out


def verdict(groups: dict[str, dict[str, Any]], intervals: dict[str, Any], rules: EffectRules) -> dict[str, str]:
    smallest = min(groups[g][p]["lifts"] for g in ("targeted", "control") for p in ("before", "after"))
    if not groups["control"]["units"] or smallest < rules.min_lifts:
        return {"status": "too_few", "text": f"Trop peu de levées pour conclure : {smallest} levée(s) dans le plus "
                f"petit groupe et période, il en faut au moins {rules.min_lifts} (ou pas de rue comparable)."}
    low, high = intervals["did"] or (None, None)
    did = groups["targeted"]["change"] - groups["control"]["change"]
    if low is None:
        return {"status": "too_few", "text": "Trop peu de rues pour estimer l'incertitude."}
    span = f"{did * 100:+.1f} points (IC 95 % {low * 100:+.1f} à {high * 100:+.1f})"
    if high < 0:
        return {"status": "decrease", "text": f"Baisse de la contamination attribuable à la campagne : {span}."}
    if low > 0:
        return {"status": "increase", "text": f"Hausse de la contamination dans les rues ciblées : {span}."}
    return {"status": "inconclusive", "text": f"Pas d'effet démontré : {span}, l'intervalle contient zéro."}


def _street_counts(session: Session, since: date, until: date) -> dict[int, Counts]:
    rows = session.execute(select(StreetDay.street_id, func.sum(StreetDay.lifts), func.sum(StreetDay.contaminated))
                           .where(StreetDay.day >= since, StreetDay.day <= until, StreetDay.street_id != 0)
                           .group_by(StreetDay.street_id))
    return {sid: (int(n), int(c)) for sid, n, c in rows}


def _household_units(session: Session, items: list[Item], windows: dict[str, tuple[date, date]]) -> list[Unit]:
    units = []
    for item in items:
        if item.bin_id:
            where = Lift.bin_id == item.bin_id
        elif item.address_id is not None:
            where = (Lift.address_id == item.address_id) & Lift.bin_id.is_(None)
        else:
            continue  # erased on request
        counts = {}
        for period, (since, until) in windows.items():
            n, c = session.execute(select(func.count(), func.sum(cast(Lift.contaminated, Integer)))
                                   .where(where, Lift.day >= since, Lift.day <= until)).one()
            counts[period] = (int(n), int(c or 0))
        units.append(Unit(item.target_key, counts["before"], counts["after"]))
    return units


def measure(session: Session, campaign: Campaign, rules: EffectRules, today: date,
            zone: tzinfo = UTC) -> dict[str, Any]:
    """The campaign's effect report (JSON-ready); ``status`` ``not_sent`` until the first send.

    The cut-off is the local day (``zone``, the server's ``timezone``) of the first send: the
    windows are compared with lifts' collection days, which are local days too.
    """
    if campaign.started_at is None:
        return {"campaign": campaign.id, "status": "not_sent", "text": "Campagne pas encore envoyée : rien à mesurer."}
    cut = campaign.started_at.astimezone(zone).date()
    windows = {"before": (cut - timedelta(days=rules.window_days), cut - timedelta(days=1)),
               "after": (cut, min(cut + timedelta(days=rules.window_days - 1), today))}
    items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
    targeted_ids = {i.street_id for i in items if i.kind != THANKS and i.street_id is not None}
    sent = [i for i in items if i.status == SENT and i.kind != THANKS and i.street_id is not None]
    before, after = (_street_counts(session, *windows[p]) for p in ("before", "after"))
    streets = {sid: Unit(f"street:{sid}", before.get(sid, (0, 0)), after.get(sid, (0, 0)))
               for sid in set(before) | set(after)}
    treated = [streets[sid] for sid in sorted({i.street_id for i in sent}) if sid in streets]
    pool = [u for sid, u in sorted(streets.items()) if sid not in targeted_ids]
    matched = match_controls(treated, pool, rules.controls_per_street)
    controls = [c for cs in matched.values() for c in cs]
    households = _household_units(session, [i for i in sent if i.kind == HOUSEHOLD], windows)
    groups = {"targeted": _group(treated), "control": _group(controls), "households": _group(households)}
    intervals = bootstrap(treated, controls, rules.bootstrap, seed=campaign.id)
    intervals["households"] = bootstrap(households, [], rules.bootstrap, seed=campaign.id)["treated"]
    return {"campaign": campaign.id, "name": campaign.name, "cut_off": cut.isoformat(),
            "windows": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in windows.items()},
            "partial": (windows["after"][1] - windows["after"][0]).days + 1 < rules.window_days,
            "groups": groups, "intervals": intervals, **verdict(groups, intervals, rules),
            "matches": {k: [c.key for c in v] for k, v in matched.items()},
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
