"""The states of trajectory matching: the segments near each fix, and which of them to keep.

``Candidates`` holds a batch's candidate segments as columns of arrays, by fix and nearest first
(``TrackLocator.segment_candidates``); ``prune`` keeps, per fix, those worth a state of the
hidden-Markov matching (``server.streets.trajectory``): the transitions cost the square of their number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_STATES = 6  # candidate segments kept per fix, the nearest (transitions cost their square)
# ... at most this many per street: a street drawn as many short segments could fill the states
# near a crossing and push the other street out (4 seeds at 10 m with heading: +6 streets exact).
STATES_PER_STREET = 3
STATE_SIGMAS = 4.0  # and only those within this many sigmas of the nearest


@dataclass(frozen=True, slots=True)
class Candidates:
    """The segments near a batch of fixes, one entry per (fix, segment): by fix, then nearest first.

    Arrays rather than an object per candidate: a batch of 500 lifts has some 10,000 of them, and
    the matching works on whole columns (``TrajectoryMatcher._decode``).
    """

    fix: np.ndarray  # index of the fix in the batch
    segment: np.ndarray
    street: np.ndarray
    distance: np.ndarray  # metres from the fix to the segment
    along: np.ndarray  # metres from the segment's start to the fix's projection on it
    ux: np.ndarray  # unit vector of the drawing direction there, east and north
    uy: np.ndarray
    # metres the fix lies past the segment's end (or before its start) along its line, 0 when it
    # projects inside: ``along`` and ``distance`` are then those of the end node
    beyond: np.ndarray

    def take(self, which: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, name)[which] for name in self.__slots__))  # type: ignore[attr-defined]


def prune(found: Candidates, sigma: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """Which candidates become states: of a fix pinned to a street, its nearest segment of that
    street; else the nearest ``MAX_STATES`` within ``STATE_SIGMAS`` sigmas of the nearest, at most
    ``STATES_PER_STREET`` per street. ``found`` is by fix, nearest first; ``pinned`` is -1 where free."""
    n = len(found.fix)
    if not n:
        return np.zeros(0, dtype=bool)
    position = np.arange(n)
    first_of_fix = np.r_[True, found.fix[1:] != found.fix[:-1]]
    start = position - rank_in_runs(first_of_fix)  # each fix's nearest candidate
    # Rank of each candidate among the fix's candidates of its street, nearest first.
    by_street = np.lexsort((position, found.street, found.fix))
    fix_s, street_s = found.fix[by_street], found.street[by_street]
    rank_s = np.empty(n, dtype=np.intp)
    rank_s[by_street] = rank_in_runs(np.r_[True, (fix_s[1:] != fix_s[:-1]) | (street_s[1:] != street_s[:-1])])
    pin = pinned[found.fix]
    free = pin < 0
    within = found.distance <= found.distance[start] + STATE_SIGMAS * sigma[found.fix]
    eligible = within & (rank_s < STATES_PER_STREET)
    taken = np.cumsum(eligible)
    before = np.where(first_of_fix, taken - eligible, 0)  # eligible ones before the fix's first candidate
    kept_free = eligible & (taken - np.maximum.accumulate(before) <= MAX_STATES)
    return np.where(free, kept_free, (found.street == pin) & (rank_s == 0))


def rank_in_runs(first: np.ndarray) -> np.ndarray:
    """Each element's position within its run of equal keys; ``first`` marks where a run starts."""
    position = np.arange(len(first))
    return position - np.maximum.accumulate(np.where(first, position, 0))
