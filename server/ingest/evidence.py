"""Evidence photos on disk, keyed by event id: validated as JPEG, size-capped, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# LiftEvent.evidence allows no larger photo; a bigger frame header is a decompression bomb (a few
# hundred bytes that a browser or an image library would inflate to gigabytes).
MAX_SIDE = 8192
# A truck id or event id names a folder and a file: no dot first ("." and ".." climb the tree).
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


class EvidenceError(ValueError):
    """Bytes that are not an acceptable photo; ``reason`` is the dead-letter code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment; EvidenceError when not a JPEG."""
    if not data.startswith(SOI):
        raise EvidenceError("bad_jpeg", f"not a JPEG: starts with {data[:4].hex() or 'nothing'}")
    if EOI not in data[-64:]:
        raise EvidenceError("bad_jpeg", "truncated JPEG: no end-of-image marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise EvidenceError("bad_jpeg", f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if not width or not height or width > MAX_SIDE or height > MAX_SIDE:
                raise EvidenceError("bad_jpeg", f"JPEG frame of size {width}x{height} (1 to {MAX_SIDE} a side)")
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            break
        pos += 2 + length
    raise EvidenceError("bad_jpeg", "corrupt JPEG: no frame header")


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    path: str  # relative to the store's root
    sha256: str
    size_bytes: int
    width: int
    height: int


class EvidenceStore:
    """Photos under ``root/<truck_id>/<event_id[:2]>/<event_id>.jpg``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def check(self, data: bytes) -> tuple[int, int]:
        if len(data) > self.max_bytes:
            raise EvidenceError("too_large", f"photo of {len(data)} bytes exceeds the {self.max_bytes}-byte cap")
        return jpeg_dimensions(data)

    def save(self, truck_id: str, event_id: str, data: bytes) -> StoredPhoto:
        """Validate and write the photo; an existing photo of the same event is replaced."""
        for name in (truck_id, event_id):
            if not SAFE_NAME.fullmatch(name):
                raise EvidenceError("bad_topic", f"{name[:70]!r} cannot name a photo folder or file")
        width, height = self.check(data)
        relative = Path(truck_id) / event_id[:2] / f"{event_id}.jpg"
        target = self.path(relative.as_posix())
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a photo, a crash leaves no corrupt file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredPhoto(relative.as_posix(), hashlib.sha256(data).hexdigest(), len(data), width, height)

    def path(self, relative: str) -> Path:
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError(f"evidence path {relative!r} leaves the evidence folder")
        return resolved

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def files_before(self, cutoff: float) -> list[str]:
        """Relative paths of the store's own files (photos and the ``.part`` files a crash left while
        writing) last written before ``cutoff`` (a POSIX time). Only names ``save`` makes are listed:
        an ``evidence_dir`` shared with other files never loses them."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("*/*/*"):
            stray_part = path.suffix == ".part"
            photo = path.suffix == ".jpg" and path.parent.name == path.stem[:2] and SAFE_NAME.fullmatch(path.stem)
            try:
                if (stray_part or photo) and path.is_file() and path.stat().st_mtime < cutoff:
                    found.append(path.relative_to(self.root).as_posix())
            except OSError:  # deleted meanwhile: nothing to do
                continue
        return found
