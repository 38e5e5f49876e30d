"""What is in a simulated bin: item counts per class that the sorting rules then judge.

A clean bin holds only classes the stream accepts; a contaminated one adds at least one refused
class, most often the errors a collection crew sees most (closed bags in the yellow bin), rarely
a dangerous item. The rules themselves (``vision.rules``) produce the errors, flag and score, so
the events are exactly those a truck with a perfect camera would send.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vision.rules import SortingRules, Verdict
from vision.schema import ErrorItem, Evidence, Stream

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
        # The lift's counts as a truck sends them: merged by the aliases once, as the rules merged them.
        return BinContents(self.rules.canonical_counts(counts), verdict)


class EvidencePhotos:
    """Real photos of one refused class (closed bags) attached to simulated lifts with that error.

    A simulated lift has no camera frame; where its judged contents hold the class the photos
    show, one of them travels as the evidence photo, so the dashboard's photo views have real
    images. The lift's model (``trivue-simulator``) says it is simulated.
    """

    def __init__(self, paths: list[Path], shows: str = "bag") -> None:
        self.paths, self.shows = [p for p in paths if p.suffix.lower() in (".jpg", ".jpeg")], shows
        if not self.paths:
            raise ValueError("no JPEG photo to attach as evidence")
        # Every photo read here, not when a lift first draws it: one that is not a JPEG stopped the
        # run half-way, lifts already published, without saying which file it was.
        self._photos = {path: self._read(path) for path in self.paths}

    def wanted(self, errors: Iterable[ErrorItem]) -> bool:
        return any(e.class_ == self.shows for e in errors)

    def pick(self, rng: random.Random) -> tuple[bytes, Evidence]:
        return self._photos[rng.choice(self.paths)]

    @staticmethod
    def _read(path: Path) -> tuple[bytes, Evidence]:
        try:
            data = path.read_bytes()
            width, height = jpeg_size(data)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path.name}: {error}") from None
        return data, Evidence(sha256=hashlib.sha256(data).hexdigest(), width=width, height=height)


# Start-of-frame markers (baseline, progressive, ...), which carry the image size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment, without decoding the image."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file")
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            raise ValueError(f"bad JPEG marker at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _SOF:
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + length
    raise ValueError("JPEG without a start-of-frame segment")
