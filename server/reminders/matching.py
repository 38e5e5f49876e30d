"""Comparison streets for a campaign: nearest untargeted streets on what predicts contamination.

Each targeted street gets ``per_street`` untargeted streets, each used once, nearest on the
pre-campaign contamination rate and lift volume (log), standardised by their spread, with
penalties for another commune, another main stream and another main collection day (the
covariates a waste department would name). The biggest targeted streets choose first.

Balance is the standardised mean difference (SMD) of the pre-campaign contamination (a binary
covariate of each lift) and of the streets' log volume, targeted streets against their controls;
above ``max_smd`` (0.25, a common threshold) the groups do not look alike and the report refuses
to conclude. The controls are matched once, when the
campaign is sent, and stored: new lifts never change them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

COMMUNE_PENALTY, STREAM_PENALTY, DAY_PENALTY = 2.0, 2.0, 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A street as it looked before the campaign."""

    key: str  # street:<id>
    commune: str
    stream: str  # main stream collected
    weekday: int  # main collection day, 0 = Monday
    lifts: int
    contaminated: int

    @property
    def rate(self) -> float:
        return self.contaminated / self.lifts if self.lifts else 0.0

    @property
    def log_lifts(self) -> float:
        return math.log(max(self.lifts, 1))


def _spread(values: Sequence[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 and statistics.pstdev(values) > 0 else 1.0


def match(treated: Sequence[Candidate], pool: Sequence[Candidate], per_street: int) -> dict[str, list[str]]:
    """Treated key -> control keys (nearest first), controls used once; streets without lifts are left out."""
    everyone = [c for c in (*treated, *pool) if c.lifts]
    rate_sd, volume_sd = _spread([c.rate for c in everyone]), _spread([c.log_lifts for c in everyone])
    free = [c for c in pool if c.lifts]
    chosen: dict[str, list[str]] = {}
    for unit in sorted((t for t in treated if t.lifts), key=lambda u: (-u.lifts, u.key)):
        def distance(c: Candidate, u: Candidate = unit) -> float:
            return (abs(c.rate - u.rate) / rate_sd + abs(c.log_lifts - u.log_lifts) / volume_sd
                    + COMMUNE_PENALTY * (c.commune != u.commune) + STREAM_PENALTY * (c.stream != u.stream)
                    + DAY_PENALTY * (c.weekday != u.weekday))

        free.sort(key=lambda c: (distance(c), c.key))
        chosen[unit.key] = [c.key for c in free[:per_street]]
        free = free[per_street:]
    return chosen


def smd(treated: Sequence[float], controls: Sequence[float]) -> float | None:
    """Standardised mean difference; None when a group is empty, or when it is undefined: neither
    group varies (one street each, or streets of one volume) yet their means differ. There is no
    spread to measure the gap against; it used to be ±infinity, which printed ``-Infinity`` in the
    JSON report (not JSON) and "écart standardisé inf" in the verdict."""
    if not treated or not controls:
        return None
    pooled = math.sqrt((statistics.pvariance(treated) + statistics.pvariance(controls)) / 2)
    difference = statistics.fmean(treated) - statistics.fmean(controls)
    if pooled == 0:
        return 0.0 if difference == 0 else None
    return difference / pooled


def rate_smd(treated: Sequence[Candidate], controls: Sequence[Candidate]) -> float | None:
    """SMD of "this lift was contaminated" before the campaign, a binary covariate (Austin, 2009):
    the difference of pooled rates over their binomial spread. Street-level rates would make a
    3-point chance gap between streets of equal true rate look enormous (their spread is only noise)."""
    nt, nc = sum(t.lifts for t in treated), sum(c.lifts for c in controls)
    if not nt or not nc:
        return None
    pt, pc = sum(t.contaminated for t in treated) / nt, sum(c.contaminated for c in controls) / nc
    spread = math.sqrt((pt * (1 - pt) + pc * (1 - pc)) / 2)
    return 0.0 if spread == 0 else (pt - pc) / spread


def balance(treated: Sequence[Candidate], controls: Sequence[Candidate]) -> dict[str, float | None]:
    """SMD of the pre-campaign contamination (lift level) and of the streets' log volume."""
    return {"rate": rate_smd(treated, controls),
            "log_lifts": smd([t.log_lifts for t in treated], [c.log_lifts for c in controls])}
