"""The estimator behind the effect report, on counts only (no database): a difference in
differences of pooled contamination rates, targeted streets against their matched controls,
with a 95 % percentile bootstrap interval that resamples matched sets of streets.

Lifts of one street are not independent (same households, same crew), so the street is the unit
of resampling; a targeted street and its controls are drawn together, which keeps the matching.
``trivue.reminder_effect`` simulates a known effect to check that this interval covers it, and
that it contains zero about 95 % of the time when nothing happened (tests and
``bench/reminders_validity.py``). ``verdict`` turns the counts, the balance and the estimate into
the report's conclusion.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.reminders.config import EffectRules

Counts = tuple[int, int]  # (lifts, contaminated)
METHOD = "difference_in_differences"
METHOD_LABEL = ("différence de différences des taux de contamination (rues ciblées contre rues témoins "
                "appariées), intervalle de confiance à 95 % par bootstrap sur les rues")


@dataclass(frozen=True, slots=True)
class Unit:
    """A street (or household) with its lifts before and after its cut-off, and per week around it."""

    key: str
    before: Counts
    after: Counts
    weeks: dict[int, Counts] = field(default_factory=dict)  # week relative to the send (-1: the week before)


@dataclass(frozen=True, slots=True)
class MatchedSet:
    treated: Unit
    controls: tuple[Unit, ...]


def pooled(units: Sequence[Unit], period: str) -> Counts:
    return sum(getattr(u, period)[0] for u in units), sum(getattr(u, period)[1] for u in units)


def change(units: Sequence[Unit]) -> float | None:
    (nb, cb), (na, ca) = pooled(units, "before"), pooled(units, "after")
    return ca / na - cb / nb if na and nb else None


def did(sets: Sequence[MatchedSet]) -> float | None:
    """Change of the targeted streets minus change of their controls (pooled rates)."""
    treated = change([s.treated for s in sets])
    control = change([c for s in sets for c in s.controls])
    return None if treated is None or control is None else treated - control


def percentiles(values: list[float]) -> list[float]:
    values = sorted(values)
    return [values[int(0.025 * (len(values) - 1))], values[math.ceil(0.975 * (len(values) - 1))]]


def bootstrap(sets: Sequence[MatchedSet], draws: int, seed: int) -> dict[str, list[float] | None]:
    """95 % intervals of the targeted change, the control change and their difference."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {"treated": [], "control": [], "did": []}
    usable = [s for s in sets if s.controls]
    for _ in range(draws if usable else 0):
        draw = [rng.choice(usable) for _ in usable]
        t = change([s.treated for s in draw])
        c = change([u for s in draw for u in s.controls])
        if t is not None:
            samples["treated"].append(t)
        if c is not None:
            samples["control"].append(c)
        if t is not None and c is not None:
            samples["did"].append(t - c)
    return {k: percentiles(v) if len(v) >= draws // 2 else None for k, v in samples.items()}


def unit_bootstrap(units: Sequence[Unit], draws: int, seed: int) -> list[float] | None:
    """95 % interval of one group's change (households: no controls, descriptive only)."""
    rng = random.Random(seed)
    values = [v for v in (change([rng.choice(units) for _ in units]) for _ in range(draws if units else 0))
              if v is not None]
    return percentiles(values) if len(values) >= draws // 2 else None


def weekly(units: Sequence[Unit], weeks: Sequence[int]) -> tuple[list[float | None], list[int]]:
    """Pooled rate and lifts of ``units`` for each relative week."""
    rates, lifts = [], []
    for week in weeks:
        n = sum(u.weeks.get(week, (0, 0))[0] for u in units)
        c = sum(u.weeks.get(week, (0, 0))[1] for u in units)
        rates.append(c / n if n else None)
        lifts.append(n)
    return rates, lifts


def _decimal(value: float, digits: int) -> str:
    """A number the French way (``59,8``); ``server.reminders.wording`` gives it a point in English."""
    return f"{value:.{digits}f}".replace(".", ",")


def _points(value: float) -> str:
    return f"{value * 100:+.1f}".replace(".", ",")


BALANCE_NAMES = {"rate": "taux", "log_lifts": "volume"}


def verdict(groups: dict[str, dict[str, Any]], estimate: dict[str, Any], smds: dict[str, float | None],
            rules: EffectRules, undefined: tuple[str, ...] = ()) -> dict[str, str]:
    """Which conclusion holds, in this order: too few lifts, unbalanced groups, then the estimate.

    ``undefined``: balance statistics that cannot be computed although both groups are there; a
    balance that cannot be checked is no balance, so nothing is concluded (a single matched pair
    would otherwise get a bootstrap interval of zero width)."""
    smallest = min(groups[g][p]["lifts"] for g in ("targeted", "control") for p in ("before", "after"))
    if not groups["control"]["units"] or smallest < rules.min_lifts:
        return {"status": "too_few", "text": f"Trop peu de levées pour conclure : {smallest} levée(s) dans le plus "
                f"petit groupe et période, il en faut au moins {rules.min_lifts} (ou pas de rue comparable)."}
    if undefined:
        return {"status": "unbalanced", "text": (
            "Pas de conclusion : l'équilibre des rues de comparaison ne peut pas être vérifié avant la campagne "
            f"({', '.join(BALANCE_NAMES[k] for k in undefined)} : écart standardisé non défini, chaque groupe n'a "
            "qu'une seule valeur).")}
    worst = max((abs(v) for v in smds.values() if v is not None), default=0.0)
    if worst > rules.max_smd:
        before_t, before_c = groups["targeted"]["before"]["rate"], groups["control"]["before"]["rate"]
        return {"status": "unbalanced", "text": (
            f"Pas de conclusion : les rues de comparaison ne ressemblent pas assez aux rues ciblées avant la "
            f"campagne ({_decimal(before_t * 100, 1)} % contre {_decimal(before_c * 100, 1)} % de levées "
            f"contaminées ; écart standardisé {_decimal(worst, 2)}, au-delà du seuil de "
            f"{_decimal(rules.max_smd, 2)}).")}
    if estimate["ci"] is None:
        return {"status": "too_few", "text": "Trop peu de rues pour estimer l'incertitude : pas de conclusion."}
    low, high = estimate["ci"]
    span = f"{_points(estimate['did'])} points (IC 95 % {_points(low)} à {_points(high)})"
    if high < 0:
        return {"status": "decrease", "text": f"Baisse de la contamination attribuable à la campagne : {span}."}
    if low > 0:
        return {"status": "increase", "text": f"Hausse de la contamination dans les rues ciblées : {span}."}
    return {"status": "inconclusive", "text": f"Pas d'effet démontré : {span}, l'intervalle contient zéro."}


CONCLUSIVE = ("decrease", "increase", "inconclusive")
