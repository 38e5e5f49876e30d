"""The GPS error of a truck whose fixes say nothing of their accuracy, measured from its own fixes.

Trivue's edge agent sends an accuracy (HDOP x 5 m from NMEA GGA, ``edge/gps.py``), but not every
truck runs it: a telematics box that forwards positions only, a receiver configured without GGA.
A lift without ``accuracy_m`` used to be matched as if its fix were 10 m off. A good receiver is
2-3 m off: taken for a 10 m one, its fixes let the crossing street win the first and last lift of
a street (``bench/streets.py --parts accuracy --no-accuracy``, docs/streets.md).

The error shows in the fixes themselves: a truck drives along the centre line of a street (plus
its lane), so a fix's distance to the nearest street is the error across the street, a
half-normal variable of scale sigma, whose median is 0.6745 sigma. The median ignores the few
fixes near a crossing or off the map; at large errors a fix is often nearer another street, so
the estimate falls short (sigma 8.2 m measured for 10 m, 13.5 m for 20 m on the Rennes rounds),
still nearer the truth than a fixed guess. The estimate is used only for fixes without an accuracy of
their own, and only from ``MIN_SAMPLES`` fixes on; before that the old default stands. Ingest sees
a truck a few lifts at a time, too few for an estimate of their own: it keeps each truck's latest
offsets (``server.ingest.tracks``) and asks ``TrackLocator.gps_accuracy`` of them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

import numpy as np

from server.streets.states import Candidates

MIN_SAMPLES = 8  # fewer offsets give a median off by more than a third
HALF_NORMAL_MEDIAN = 0.6745  # median of |N(0, 1)|
# What a receiver reports as its accuracy is the radius holding 68 % of its fixes, 1.51 sigma of a
# circular Gaussian error, and what the matcher takes for a fix's sigma is that reported figure: an
# estimated sigma goes in as the accuracy the receiver would have reported.
RADIUS_68 = 1.51
# An estimate above this is no longer GPS error across a street: the truck drives where the map
# has no street (a depot, a new estate), and a wide radius would pull its fixes onto far streets.
MAX_ACCURACY_M = 20.0


def accuracy_from_offsets(offsets: Iterable[float]) -> float | None:
    """The accuracy (68 % radius) a receiver would report, from fixes' distances to their nearest
    street; None from too few."""
    kept = [d for d in offsets if d == d]  # NaN: no street near the fix
    if len(kept) < MIN_SAMPLES:
        return None
    return min(RADIUS_68 * statistics.median(kept) / HALF_NORMAL_MEDIAN, MAX_ACCURACY_M)


def fix_sigmas(paths: Sequence[int], accuracies: Sequence[float | None], found: Candidates, floor_m: float,
               unknown_m: float) -> list[float]:
    """Each fix's GPS sigma for trajectory matching: its own accuracy; for the fixes without one,
    the accuracy measured from the distances of its path's fixes without one to their nearest
    street, else ``unknown_m``; never under ``floor_m``. ``paths[q]`` is fix q's path, ``found``
    the fixes' candidates, by fix and nearest first."""
    nearest = np.full(len(accuracies), np.nan)
    if len(found.fix):
        first = np.r_[True, found.fix[1:] != found.fix[:-1]]
        nearest[found.fix[first]] = found.distance[first]
    unknown: dict[int, list[int]] = {}
    for q, (path, accuracy) in enumerate(zip(paths, accuracies, strict=True)):
        if not accuracy:
            unknown.setdefault(path, []).append(q)
    measured = {path: accuracy_from_offsets(nearest[qs].tolist()) for path, qs in unknown.items()}
    return [max(accuracy or measured.get(path) or unknown_m, floor_m)
            for path, accuracy in zip(paths, accuracies, strict=True)]
