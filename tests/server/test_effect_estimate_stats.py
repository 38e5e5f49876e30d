"""The effect report's estimator checked against values computed independently (by hand, scipy).

- A campaign on one street has no spread between streets to measure: the bootstrap over one
  matched set drew the same set every time, gave an interval of zero width, and the report said
  "Baisse attribuable" for any drop at all. Few sets undercovered the same way (see
  ``server.reminders.effect_estimate``): the interval is now the estimate ± t(sets - 1) × the
  bootstrap's standard error, and needs two sets.
- A targeted street without comparison streets moved the estimate although the bootstrap left
  it out: the estimate and its interval now rest on the same matched sets.
"""

from __future__ import annotations

import statistics

import pytest
from scipy.stats import t as student

from server.reminders.config import EffectRules
from server.reminders.effect import conclude
from server.reminders.effect_estimate import MatchedSet, Unit, bootstrap, did, t975
from server.reminders.matching import Candidate

RULES = EffectRules(min_lifts=50, bootstrap=500)


def _candidate(key: str, lifts: int, dirty: int) -> Candidate:
    return Candidate(key, "Rennes", "recyclables", 1, lifts, dirty)


@pytest.mark.parametrize("df", [*range(1, 40), 50, 80, 120, 500, 2000])
def test_t_quantile_is_students(df: int) -> None:
    assert t975(df) == pytest.approx(student.ppf(0.975, df), abs=3e-4)


def test_one_matched_set_concludes_nothing() -> None:
    # 400 lifts a period on the targeted street, 30 % then 20 %; its two controls stay at 30 %.
    treated = Unit("street:1", (400, 120), (400, 80))
    controls = (Unit("street:2", (380, 114), (380, 114)), Unit("street:3", (420, 126), (420, 126)))
    covariates = {"street:1": _candidate("street:1", 400, 120), "street:2": _candidate("street:2", 380, 114),
                  "street:3": _candidate("street:3", 420, 126)}
    report = conclude([MatchedSet(treated, controls)], covariates, RULES, seed=1)
    assert report["balance"]["ok"]
    assert report["estimate"]["did"] == pytest.approx(-0.10)
    # Before: "ci" [-0.1, -0.1] and "Baisse de la contamination attribuable à la campagne".
    assert report["estimate"]["ci"] is None
    assert report["status"] == "too_few", report["text"]
    assert "Trop peu de rues" in report["text"]


def test_interval_is_the_t_interval_of_the_bootstrap_standard_error() -> None:
    sets = [MatchedSet(Unit(f"t{i}", (100, 30 + i), (100, 25 + 2 * i)),
                       (Unit(f"c{i}", (100, 31 + i), (100, 30 + i)), Unit(f"d{i}", (90, 27), (95, 26))))
            for i in range(4)]
    estimate = did(sets)
    # By hand: pooled changes, targeted minus controls.
    treated = (25 + 27 + 29 + 31) / 400 - (30 + 31 + 32 + 33) / 400
    control = (30 + 31 + 32 + 33 + 4 * 26) / (400 + 4 * 95) - (31 + 32 + 33 + 34 + 4 * 27) / (400 + 4 * 90)
    assert estimate == pytest.approx(treated - control)
    low, high = bootstrap(sets, 2000, seed=3)["did"]
    assert (low + high) / 2 == pytest.approx(estimate)
    # The same draws, by the same generator: their standard error times scipy's t quantile, 3 df.
    import random

    rng, draws = random.Random(3), []
    for _ in range(2000):
        draw = [rng.choice(sets) for _ in sets]
        t_change = sum(s.treated.after[1] for s in draw) / sum(s.treated.after[0] for s in draw) - \
            sum(s.treated.before[1] for s in draw) / sum(s.treated.before[0] for s in draw)
        cs = [c for s in draw for c in s.controls]
        c_change = sum(c.after[1] for c in cs) / sum(c.after[0] for c in cs) - \
            sum(c.before[1] for c in cs) / sum(c.before[0] for c in cs)
        draws.append(t_change - c_change)
    half = student.ppf(0.975, 3) * statistics.stdev(draws)
    assert high - low == pytest.approx(2 * half, rel=1e-3)


def test_a_targeted_street_without_controls_is_left_out_of_the_estimate() -> None:
    matched = [MatchedSet(Unit(f"t{i}", (100, 30), (100, 28)), (Unit(f"c{i}", (100, 30), (100, 30)),))
               for i in range(3)]
    lonely = MatchedSet(Unit("t9", (100, 30), (400, 0)), ())  # no comparison street: a big "drop" of its own
    # By hand over the matched sets: targeted 28 % - 30 %, controls 30 % - 30 %.
    assert did([*matched, lonely]) == pytest.approx(-0.02)
    covariates = {u.key: _candidate(u.key, u.before[0], u.before[1])
                  for s in matched for u in (s.treated, *s.controls)}
    report = conclude([*matched, lonely], covariates, EffectRules(min_lifts=10, bootstrap=300), seed=2)
    assert report["estimate"]["unmatched"] == 1 and report["estimate"]["matched_sets"] == 3
    assert report["estimate"]["did"] == pytest.approx(-0.02)
    low, high = report["estimate"]["ci"]
    assert low <= report["estimate"]["did"] <= high  # was -0.18 against an interval around -0.02
    assert report["groups"]["targeted"]["units"] == 4  # the groups still say what happened there
