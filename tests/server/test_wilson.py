"""The Wilson 95 % interval every rate is shown with (API, dashboard, open data, effect report),
against scipy's, including the edges: no lift, one lift, none or all contaminated."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from server.web.reports import rate_fields, wilson

CASES = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 3), (2, 3), (5, 14), (0, 1000), (1000, 1000), (37, 412),
         (1, 100_000), (99_999, 100_000)]


@pytest.mark.parametrize(("k", "n"), CASES)
def test_wilson_is_scipys(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(expected.low, abs=1e-7)  # Z_95 is 1.959964, rounded
    assert high == pytest.approx(expected.high, abs=1e-7)  # Z_95 is 1.959964, rounded
    assert 0.0 <= low <= k / n <= high <= 1.0


@pytest.mark.parametrize("n", [1, 3, 10, 48, 1000])
def test_the_edges_are_exact(n: int) -> None:
    # 0.9999999999999999 used to reach the JSON (and "ci_high": 1 read back as not 1).
    assert wilson(0, n)[0] == 0.0
    assert wilson(n, n)[1] == 1.0


def test_no_lift_has_no_rate() -> None:
    assert rate_fields(0, 0) == {"lifts": 0, "contaminated": 0, "rate": None, "ci_low": 0.0, "ci_high": 1.0}
