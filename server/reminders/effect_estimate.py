"""The estimator behind the effect report, on counts only (no database): a difference in
differences of pooled contamination rates, targeted streets against their matched controls,
with a 95 % interval: the estimate ± Student's t (matched sets - 1 degrees of freedom) times the
standard error of a bootstrap that resamples matched sets of streets.

Lifts of one street are not independent (same households, same crew), so the street is the unit
of resampling; a targeted street and its controls are drawn together, which keeps the matching.
Why not the bootstrap's own percentiles: with few matched sets they are far too narrow (a single
set gave an interval of zero width, and in simulations without any effect 2, 3 and 5 targeted
streets were found "significant" in about 50 %, 24 % and 16 % of campaigns, against 5 %
nominal); the t quantile widens the interval as the sets get few, and kept the false alarms near
5 % from 2 sets up. A targeted street without comparison streets has nothing to be compared
with: it is left out of the estimate (``matched``), as it was of the bootstrap.
``trivue.reminder_effect`` simulates a known effect to check that this interval covers it, and
that it contains zero about 95 % of the time when nothing happened (tests and
``bench/reminders_validity.py``). ``verdict`` turns the counts, the balance and the estimate into
the report's conclusion.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.reminders.config import EffectRules
from server.reminders.phrases import plural

Counts = tuple[int, int]  # (lifts, contaminated)
METHOD = "difference_in_differences"
METHOD_LABEL = ("différence de différences des taux de contamination (rues ciblées contre rues témoins "
                "appariées), intervalle de confiance à 95 % par bootstrap sur les rues (erreur type, loi de "
                "Student)")
# Student's t 97.5 % quantiles for 1 to 10 degrees of freedom (scipy.stats.t.ppf); beyond, the
# Cornish-Fisher expansion around the normal quantile (``t975``) is within 3e-4 of them.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281)
Z975 = 1.959964


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


def matched(sets: Sequence[MatchedSet]) -> list[MatchedSet]:
    """The sets with at least one comparison street: the only ones the estimate can use."""
    return [s for s in sets if s.controls]


def did(sets: Sequence[MatchedSet]) -> float | None:
    """Change of the targeted streets minus change of their controls (pooled rates), over the
    matched sets only: a targeted street without controls would move the targeted rate alone."""
    sets = matched(sets)
    treated = change([s.treated for s in sets])
    control = change([c for s in sets for c in s.controls])
    return None if treated is None or control is None else treated - control


def t975(df: int) -> float:
    """Student's t 97.5 % quantile (a two-sided 95 % interval) for ``df`` >= 1 degrees of freedom."""
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(g / df ** (i + 1) for i, g in enumerate(terms))


def interval(estimate: float | None, draws: list[float], units: int) -> list[float] | None:
    """``estimate`` ± t(units - 1) × the bootstrap's standard error; None with fewer than 2
    resampled units (nothing then says how much the estimate would vary)."""
    if estimate is None or units < 2 or len(draws) < 2:
        return None
    half = t975(units - 1) * statistics.stdev(draws)
    return [estimate - half, estimate + half]


def bootstrap(sets: Sequence[MatchedSet], draws: int, seed: int) -> dict[str, list[float] | None]:
    """95 % intervals of the targeted change, the control change and their difference."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {"treated": [], "control": [], "did": []}
    usable = matched(sets)
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
    estimates = {"treated": change([s.treated for s in usable]),
                 "control": change([c for s in usable for c in s.controls]), "did": did(usable)}
    return {k: interval(estimates[k], v, len(usable)) if len(v) >= draws // 2 else None for k, v in samples.items()}


def unit_bootstrap(units: Sequence[Unit], draws: int, seed: int) -> list[float] | None:
    """95 % interval of one group's change (households: no controls, descriptive only)."""
    rng = random.Random(seed)
    values = [v for v in (change([rng.choice(units) for _ in units]) for _ in range(draws if units else 0))
              if v is not None]
    return interval(change(units), values, len(units)) if len(values) >= draws // 2 else None


def weekly(units: Sequence[Unit], weeks: Sequence[int], min_lifts: int = 1) -> tuple[list[float | None], list[int]]:
    """Pooled rate and lifts of ``units`` for each relative week; no rate from fewer than ``min_lifts``
    lifts (``effect.min_lifts``, under which ``verdict`` says « Trop peu de levées »: a live campaign's
    thin week plotted 100 % from 3 lifts)."""
    rates, lifts = [], []
    for week in weeks:
        n = sum(u.weeks.get(week, (0, 0))[0] for u in units)
        c = sum(u.weeks.get(week, (0, 0))[1] for u in units)
        rates.append(c / n if n and n >= min_lifts else None)
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
        return {"status": "too_few", "text": f"Trop peu de levées pour conclure : {smallest} "
                                             f"{plural(smallest, 'levée', 'levées')} dans le plus "
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
