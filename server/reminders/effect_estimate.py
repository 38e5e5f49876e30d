"""The estimator behind the effect report, on counts only (no database): a difference in
differences of pooled contamination rates, targeted streets against their matched controls,
with a 95 % percentile bootstrap interval that resamples matched sets of streets.

Lifts of one street are not independent (same households, same crew), so the street is the unit
of resampling; a targeted street and its controls are drawn together, which keeps the matching.
``trivue.reminder_effect`` simulates a known effect to check that this interval covers it, and
that it contains zero about 95 % of the time when nothing happened (tests and
``bench/reminders_validity.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

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
