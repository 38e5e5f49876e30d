"""A photo's fingerprint for near-duplicate search: perceptual hashes under its 8 flips and
rotations, SIFT features upright and mirrored, and a small grey copy for the pixel check
(``training.duplicates`` compares them). Kept on disk by the photo's content: SIFT is ~150 ms a
photo on one core, and every merge after a few new photos would otherwise redo the whole source.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

FEATURES = 500
SIDE = 416  # photos are matched at this longest side (the shared exports' own size)
FORMAT = 1  # bump when what a fingerprint holds changes: the cache folder changes with it


@dataclass(slots=True)
class Fingerprint:
    phash: np.ndarray  # (8, 64) bools: the photo under its 8 flips and rotations
    dhash: np.ndarray
    keypoints: np.ndarray  # (n, 2) float32 at SIDE scale
    descriptors: np.ndarray | None  # (n, 128) float32 SIFT
    mirrored: tuple[np.ndarray, np.ndarray | None]  # the same of the mirrored photo, in upright coordinates
    small: np.ndarray  # grey photo at SIDE, for the pixel check
    content: np.ndarray  # bool mask: True where the photo is not export padding


_ROTATIONS = (None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The image under its 8 flips and right-angle rotations."""
    return [oriented(image, orientation) for orientation in range(8)]


def oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """``dihedral(image)[orientation]`` alone: the 4 rotations, then the same mirrored."""
    rotation = _ROTATIONS[orientation % 4]
    turned = image if rotation is None else cv2.rotate(image, rotation)
    return cv2.flip(turned, 1) if orientation >= 4 else turned


def fingerprint(path: Path, cache: Path | None = None) -> Fingerprint:
    """Hashes under the 8 orientations, SIFT features and a small grey copy of one photo.

    With ``cache`` (a folder), the hashes and features are kept there by the photo's content
    (~95 kB a photo): SIFT is ~150 ms a photo on one core, and every merge after a few new photos
    (a field export, the suite's own split check) fingerprints the whole source again.
    """
    # decoded by OpenCV: Ultralytics patches PIL.Image.open when it is imported
    data = path.read_bytes() if path.is_file() else b""
    colour = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if colour is None:
        raise ValueError(f"{path}: not a readable image")
    small, content = _prepared(colour)
    kept = cache / f"{hashlib.sha256(data).hexdigest()[:40]}.npz" if cache is not None else None
    if kept is not None and kept.is_file():
        try:
            return _read_fingerprint(kept, small, content)
        except (OSError, ValueError, KeyError, EOFError):  # a damaged entry is computed again
            log.warning("%s: unreadable, fingerprinting %s again", kept, path)
    found = _fingerprint(small, content)
    if kept is not None:
        _write_fingerprint(kept, found)
    return found


def cache_root() -> Path:
    """Trivue's cache folder (``$XDG_CACHE_HOME/trivue``, else ``~/.cache/trivue``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trivue"


def fingerprint_cache_dir() -> Path:
    """Fingerprints by photo content; the folder names what they hold (format, features, size)."""
    return cache_root() / f"fingerprints-v{FORMAT}-{FEATURES}-{SIDE}"


def cached_fingerprint(path: Path) -> Fingerprint:
    """``fingerprint`` through the shared cache (module level: process pools pickle it)."""
    return fingerprint(path, fingerprint_cache_dir())


def _prepared(colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey photo at SIDE and the mask of where it is not export padding."""
    scale = SIDE / max(colour.shape[:2])
    size = (max(round(colour.shape[1] * scale), 8), max(round(colour.shape[0] * scale), 8))
    colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
    small = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    # Roboflow's shear and rotation augments pad with flat white or black: not the photo. Every
    # channel at 245 or more, or at 8 or less; OpenCV's inRange is that mask, 25 times faster than
    # NumPy's min and max over the three channels (most of the time of a fingerprint read from the cache).
    padding = (cv2.inRange(colour, (245, 245, 245), (255, 255, 255))
               | cv2.inRange(colour, (0, 0, 0), (8, 8, 8))) > 0
    content = cv2.erode((~padding).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return small, content


def _fingerprint(small: np.ndarray, content: np.ndarray) -> Fingerprint:
    import imagehash
    from PIL import Image

    views = [Image.fromarray(v) for v in dihedral(small)]
    phash = np.stack([imagehash.phash(v).hash.ravel() for v in views])
    dhash = np.stack([imagehash.dhash(v).hash.ravel() for v in views])
    sift = cv2.SIFT_create(nfeatures=FEATURES)
    mask = content.astype(np.uint8) * 255  # no keypoints on the padding's edges
    keypoints, descriptors = sift.detectAndCompute(small, mask)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    flipped_kp, flipped_desc = sift.detectAndCompute(cv2.flip(small, 1), cv2.flip(mask, 1))
    flipped = np.float32([(small.shape[1] - 1 - k.pt[0], k.pt[1]) for k in flipped_kp]).reshape(-1, 2)
    return Fingerprint(phash, dhash, points, descriptors, (flipped, flipped_desc), small, content)


def _write_fingerprint(path: Path, found: Fingerprint) -> None:
    """One entry, whole or not at all (pool workers and suite workers write side by side). SIFT
    descriptors are whole numbers up to 255: kept as bytes, read back exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"phash": found.phash, "dhash": found.dhash, "keypoints": found.keypoints,
              "mirrored_keypoints": found.mirrored[0]}
    for key, descriptors in (("descriptors", found.descriptors), ("mirrored_descriptors", found.mirrored[1])):
        if descriptors is not None:
            arrays[key] = descriptors.astype(np.uint8)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.part.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, path)


def _read_fingerprint(path: Path, small: np.ndarray, content: np.ndarray) -> Fingerprint:
    with np.load(path) as kept:
        def descriptors(key: str) -> np.ndarray | None:
            return kept[key].astype(np.float32) if key in kept.files else None

        return Fingerprint(kept["phash"], kept["dhash"], kept["keypoints"], descriptors("descriptors"),
                           (kept["mirrored_keypoints"], descriptors("mirrored_descriptors")), small, content)
