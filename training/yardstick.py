"""The field test split as it stands on disk: the photos the manifest puts in it, those that can be
read, and why the others cannot.

A field export's test split is the deployment's frozen yardstick (``training.field``), but its
folder outlives the server's copies: privacy.md (section 1 quater) asks to delete a photo once its
retention date has passed, a copy can be partial, a file truncated. ``manifest.json`` still lists
every photo the export wrote, so a photo it lists that cannot be read is counted, with its reason,
rather than silently shrinking the split the figures rest on (``trivue evaluate --compare``, the
model card's field rows).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from training.datasets import DatasetError, check_image

EXPIRED, ABSENT, UNREADABLE = "expired", "absent", "unreadable"
REASONS = {
    EXPIRED: "past their retention date (retention_until in manifest.json), deleted from the folder",
    ABSENT: "absent from images/test though not past their retention date (deleted or not copied)",
    UNREADABLE: "not readable images (truncated or corrupt copies)",
}


@dataclass(frozen=True, slots=True)
class SplitPhotos:
    """What the manifest promised of the test split, and what of it can be read."""

    expected: int  # photos the manifest puts in the test split
    photos: list[Path]  # those to read: in images/test (and decoded, when asked)
    left_out: dict[str, int]  # reason (REASONS) -> photos of the manifest not read
    days: list[str]  # collection days of the photos read (the manifest's)
    past_retention: int  # photos read although their retention date has passed

    @property
    def missing(self) -> int:
        return sum(self.left_out.values())

    def describe(self) -> str:
        """'52 of the 60 test photos of manifest.json read, 8 left out: 6 past ..., 2 absent ...'."""
        head = f"{len(self.photos)} of the {self.expected} test photos of manifest.json read"
        if not self.missing:
            return head
        why = "; ".join(f"{n} {REASONS[reason]}" for reason, n in self.left_out.items())
        return f"{head}, {self.missing} left out: {why}"

    def to_json(self) -> dict:
        return {"expected": self.expected, "read": len(self.photos), "left_out": self.left_out,
                "past_retention_read": self.past_retention}


def read_test_split(listed: list[dict], on_disk: list[Path], today: date, decode: bool) -> SplitPhotos:
    """Match the manifest's test photos (``listed``, its entries) with the images of images/test
    (``on_disk``). ``decode``: also leave out, counted, the photos that do not decode (a comparison
    reads them all; training decodes them itself and stops on a bad one)."""
    entries = {Path(str(p.get("file", ""))).stem: p for p in listed}
    left_out: Counter[str] = Counter()
    photos = []
    for image in on_disk:
        if decode:
            try:
                check_image(image)
            except DatasetError:
                left_out[UNREADABLE] += 1
                continue
        photos.append(image)
    present = {image.stem for image in on_disk}
    for stem, entry in entries.items():
        if stem not in present:
            left_out[EXPIRED if expired(entry, today) else ABSENT] += 1
    read = [entries[image.stem] for image in photos if image.stem in entries]
    return SplitPhotos(
        expected=len(entries) or len(on_disk),  # a manifest listing none: the files are all there is
        photos=photos,
        left_out={reason: left_out[reason] for reason in REASONS if left_out[reason]},
        days=sorted({str(entry.get("day")) for entry in read}),
        past_retention=sum(expired(entry, today) for entry in read),
    )


def expired(entry: dict, today: date) -> bool:
    """Past its retention date on ``today`` (UTC, as the server counts it). A date that is not one
    counts as not expired: the photo's absence is then reported as such, not explained."""
    try:
        return date.fromisoformat(str(entry.get("retention_until"))) <= today
    except ValueError:
        return False
