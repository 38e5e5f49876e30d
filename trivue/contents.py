"""What is in a simulated bin: item counts per class that the sorting rules then judge.

A clean bin holds only classes the stream accepts; a contaminated one adds at least one refused
class, most often the errors a collection crew sees most (closed bags in the yellow bin), rarely
a dangerous item. The rules themselves (``vision.rules``) produce the errors, flag and score, so
the events are exactly those a truck with a perfect camera would send.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vision.rules import SortingRules, Verdict
from vision.schema import Stream

# Relative frequency of refused classes in a contaminated bin (field reports of French collection
# services: bags and food dominate); a class missing here weighs 1.
ERROR_WEIGHTS = {"bag": 6.0, "food": 2.0, "glass": 2.0, "textile": 1.0, "film": 1.5, "electronics": 0.5}
ALERT_SHARE = 0.03  # contaminated lifts that also hold a battery or a gas cylinder


@dataclass(frozen=True, slots=True)
class BinContents:
    counts: dict[str, int]
    verdict: Verdict


class ContentMaker:
    """Draws bin contents for one stream from the rules' accepted / refused classes."""

    def __init__(self, rules: SortingRules, stream: Stream) -> None:
        self.rules, self.stream = rules, stream
        table = {name: rules.disposition(stream, name) for name in rules.spec.classes}
        self.accepted = sorted(n for n, d in table.items() if d == "accepted")
        self.errors = sorted(n for n, d in table.items() if d == "error")
        self.alerts = sorted(n for n, d in table.items() if d == "alert")
        if not self.accepted or not self.errors:
            raise ValueError(f"stream {stream.value}: the rules need accepted and refused classes to simulate")

    def draw(self, contaminated: bool, rng: random.Random) -> BinContents:
        counts: dict[str, int] = {}
        for name in rng.sample(self.accepted, k=min(len(self.accepted), rng.randint(1, 3))):
            counts[name] = rng.randint(1, 4)
        if contaminated:
            weights = [ERROR_WEIGHTS.get(n, 1.0) for n in self.errors]
            wrong = rng.choices(self.errors, weights)[0]
            counts[wrong] = counts.get(wrong, 0) + rng.randint(1, 2)
            if self.alerts and rng.random() < ALERT_SHARE:
                counts[rng.choice(self.alerts)] = 1
        verdict = self.rules.judge(self.stream, counts)
        if verdict.contaminated != contaminated:  # rules where a refused class is only "info"
            raise ValueError(f"stream {self.stream.value}: simulated contents {counts} judged "
                             f"contaminated={verdict.contaminated}, wanted {contaminated}")
        return BinContents(counts, verdict)
