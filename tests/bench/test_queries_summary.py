"""bench/queries.py's closing lines: issue 16's growth goal says what it compares and judges it."""

from __future__ import annotations

from bench.queries import growth_line

TEN_M, THIRTY_M = 10_000_000, 30_000_000


def ms(*values: float) -> list[float]:
    return [v / 1000 for v in values]


def test_the_goal_compares_the_year_p95_at_30m_with_10m() -> None:
    # 20 calls each: p95 is the 19th of 20 (index round(0.95 * 19) = 18), p50 the 11th (index 10).
    small = ms(*range(31, 51))  # p95 49 ms, p50 41 ms
    large = ms(*range(31, 50), 200)  # p95 49 ms as well, p50 41: one outlier past the p95
    line = growth_line("postgresql 10M", TEN_M, small, "postgresql 30M", THIRTY_M, large)
    assert "p95 49.0 ms at 30M against 49.0 ms at 10M: x1.00" in line
    assert "goal: the 30M p95 at most 1.3x the 10M p95: met" in line
    assert "p50 x1.00" in line


def test_the_goal_is_not_met_above_1_3x() -> None:
    small, large = ms(*[40.0] * 20), ms(*[53.0] * 20)  # x1.325
    line = growth_line("postgresql 10M", TEN_M, small, "postgresql 30M", THIRTY_M, large)
    assert "x1.32" in line and "1.3x the 10M p95: NOT met" in line
    # judged on the ratio itself, not on its rounding to two decimals
    line = growth_line("postgresql 10M", TEN_M, ms(*[100.0] * 20), "postgresql 30M", THIRTY_M, ms(*[130.4] * 20))
    assert "x1.30" in line and "NOT met" in line


def test_other_sizes_are_not_judged_against_the_goal() -> None:
    # The goal is the 30M year against the 10M one: 1M against 100k (a quick run) proves nothing about it.
    line = growth_line("postgresql 100,000", 100_000, ms(*[10.0] * 20), "postgresql 1M", 1_000_000, ms(*[11.0] * 20))
    assert "x1.10" in line and "at 10x the lifts" in line
    assert "met" not in line and "not judged" in line
