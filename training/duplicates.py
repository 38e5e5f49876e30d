"""Near-duplicate photos: find them, group them, and keep each group inside one split.

Roboflow exports hold one photo several times under different names: mirrored, flipped,
rotated, re-cropped, tiled, blurred or with another contrast. A copy in val of a photo in train
turns validation into a memory test, so every figure it gives is inflated. Two detectors, each
for what the other misses:

- **perceptual hashes** (``imagehash`` pHash and dHash) of the photo under its eight flips and
  right-angle rotations catch whole-image copies whatever their colour, blur or orientation;
- **local features** (OpenCV SIFT, matched against every photo of the same source, verified by a
  RANSAC homography and by the pixels themselves) catch crops and tiles, which change every
  global hash.

Feature matches alone would merge distinct photos from one fixed hopper camera: the hopper's
walls are the same in every shot. So a feature link also needs the warped photos to agree
pixel by pixel (normalised correlation over their overlap, which ignores brightness and contrast):
a different bag in the same hopper fails that test, a crop of the same bag passes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

VERSION = 2  # bump when the detection changes: cached groupings are then recomputed

# Hash candidates (bits of 64). On the glass-ewaste photos every pair with pHash + dHash <= 26 was
# the same shot (its README), but dark hopper photos padded with white sit at 20-26 while being
# different bags: so a hash only proposes, and the pixels (MIN_NCC) decide, as for features.
HASH_SUM_MAX = 28
# Feature verification. SIFT, not ORB: on the heavily augmented hopper copies (mirrored, sheared,
# re-tiled) ORB found 10-18 matches per known pair and RANSAC kept 4-8, as for unrelated photos;
# SIFT keeps 24-136 inliers on the same pairs and 3-8 on distinct photos of the same hopper.
FEATURES = 500
SIDE = 416  # photos are matched at this longest side (the shared exports' own size)
CANDIDATES = 6  # per photo, the photos with most descriptor votes are verified
MIN_VOTES = 8
MIN_INLIERS = 15
MIN_NCC = 0.8  # hash candidates: pixel agreement that confirms them
NCC_SIDE = 96  # correlation measured on blurred, small photos: fine texture is noise here


@dataclass(frozen=True, slots=True)
class Link:
    """Why two photos are the same shot."""

    a: int
    b: int
    kind: str  # "hash" or "features"
    score: float  # hash: pHash + dHash bits; features: normalised correlation


@dataclass(slots=True)
class Fingerprint:
    phash: np.ndarray  # (8, 64) bools: the photo under its 8 flips and rotations
    dhash: np.ndarray
    keypoints: np.ndarray  # (n, 2) float32 at SIDE scale
    descriptors: np.ndarray | None  # (n, 128) float32 SIFT
    mirrored: tuple[np.ndarray, np.ndarray | None]  # the same of the mirrored photo, in upright coordinates
    small: np.ndarray  # grey photo at SIDE, for the pixel check
    content: np.ndarray  # bool mask: True where the photo is not export padding


@dataclass(slots=True)
class Groups:
    """Union-find over photo indices; ``links`` keeps the evidence for the report."""

    parent: list[int]
    links: list[Link] = field(default_factory=list)

    @classmethod
    def of(cls, n: int) -> Groups:
        return cls(list(range(n)))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, link: Link) -> None:
        self.links.append(link)
        ra, rb = self.find(link.a), self.find(link.b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return out


def _dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The image under its 8 flips and right-angle rotations."""
    rotations = [image, cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), cv2.rotate(image, cv2.ROTATE_180),
                 cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)]
    return rotations + [cv2.flip(r, 1) for r in rotations]


def fingerprint(path: Path, cache: Path | None = None) -> Fingerprint:
    """Hashes under the 8 orientations, SIFT features and a small grey copy of one photo.

    With ``cache`` (a folder), the hashes and features are kept there by the photo's content
    (~130 kB a photo): SIFT is ~150 ms a photo on one core, and every merge after a few new photos
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


def fingerprint_cache_dir() -> Path:
    """Fingerprints by photo content, beside the groupings; the version keys what they hold."""
    return default_cache_dir().parent / f"fingerprints-v{VERSION}-{FEATURES}-{SIDE}"


def _prepared(colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey photo at SIDE and the mask of where it is not export padding."""
    scale = SIDE / max(colour.shape[:2])
    size = (max(round(colour.shape[1] * scale), 8), max(round(colour.shape[0] * scale), 8))
    colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
    small = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    # Roboflow's shear and rotation augments pad with flat white or black: not the photo
    padding = (colour.min(2) >= 245) | (colour.max(2) <= 8)
    content = cv2.erode((~padding).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return small, content


def _fingerprint(small: np.ndarray, content: np.ndarray) -> Fingerprint:
    import imagehash
    from PIL import Image

    views = [Image.fromarray(v) for v in _dihedral(small)]
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


def hash_links(prints: Sequence[Fingerprint], indices: Sequence[int]) -> list[Link]:
    """Pairs among ``indices`` whose hashes come close, in any orientation of the second, and whose
    pixels then agree."""
    if len(indices) < 2:
        return []
    upright_p = np.stack([prints[i].phash[0] for i in indices])  # (n, 64)
    upright_d = np.stack([prints[i].dhash[0] for i in indices])
    links = []
    for row, i in enumerate(indices):
        # the distance from i upright to every later photo in each of its 8 orientations
        later = indices[row + 1:]
        if not later:
            break
        p_all = np.stack([prints[j].phash for j in later])  # (m, 8, 64)
        d_all = np.stack([prints[j].dhash for j in later])
        p = (p_all != upright_p[row][None, None]).sum(2)  # (m, 8)
        d = (d_all != upright_d[row][None, None]).sum(2)
        total = p + d
        best = total.argmin(1)
        pb, db = p[np.arange(len(later)), best], d[np.arange(len(later)), best]
        for k in np.flatnonzero(pb + db <= HASH_SUM_MAX):
            score = oriented_ncc(prints[i], prints[later[k]], int(best[k]))
            if score >= MIN_NCC:
                links.append(Link(i, later[k], "hash", round(score, 3)))
    return links


def oriented_ncc(a: Fingerprint, b: Fingerprint, orientation: int) -> float:
    """Pixel agreement of ``a`` with ``b`` turned by one of the 8 dihedral orientations."""
    turned = _dihedral(b.small)[orientation]
    content = _dihedral(b.content.astype(np.uint8))[orientation]
    size = (a.small.shape[1], a.small.shape[0])
    turned = cv2.resize(turned, size, interpolation=cv2.INTER_AREA)
    content = cv2.resize(content, size, interpolation=cv2.INTER_NEAREST) > 0
    return _ncc(a.small, turned, content & a.content)


def verify(a: Fingerprint, a_points: np.ndarray, b: Fingerprint, matches: list[tuple[int, int]]) -> float | None:
    """RANSAC inliers of a homography taking ``b`` onto ``a``, when a sane one explains the matches.

    ``a_points`` are ``a``'s matched keypoints (upright or mirrored), in ``a``'s upright frame.
    """
    if len(matches) < MIN_INLIERS:
        return None
    src = np.float32([b.keypoints[j] for _, j in matches])
    dst = np.float32([a_points[i] for i, _ in matches])
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
    if homography is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    affine = homography[:2, :2]
    det = float(np.linalg.det(affine))
    if not 1 / 25 < abs(det) < 25 or abs(homography[2, :2]).max() > 2e-3:
        return None  # degenerate or strongly projective: not a crop or a re-scale
    return float(inliers.sum())


def _ncc(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    scale = NCC_SIDE / max(x.shape)
    size = (max(round(x.shape[1] * scale), 4), max(round(x.shape[0] * scale), 4))
    xs = cv2.resize(cv2.GaussianBlur(x, (5, 5), 0), size, interpolation=cv2.INTER_AREA).astype(np.float64)
    ys = cv2.resize(cv2.GaussianBlur(y, (5, 5), 0), size, interpolation=cv2.INTER_AREA).astype(np.float64)
    ms = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if ms.sum() < 16:
        return 0.0
    xv, yv = xs[ms] - xs[ms].mean(), ys[ms] - ys[ms].mean()
    denominator = float(np.sqrt((xv * xv).sum() * (yv * yv).sum()))
    return float((xv * yv).sum() / denominator) if denominator > 0 else 0.0


def _votes(query: np.ndarray, index: cv2.FlannBasedMatcher, skip_owner: int | None, owner: np.ndarray,
           size: int) -> np.ndarray:
    """For each pool photo, how many query descriptors have their nearest neighbour in it.

    No ratio test here: among hundreds of similar photos the second neighbour is always close.
    Two neighbours are asked so that a photo's own descriptors (``skip_owner``) can be passed over.
    """
    nearest = [next((m.trainIdx for m in found if owner[m.trainIdx] != skip_owner), -1)
               for found in index.knnMatch(query, k=2)]
    hits = owner[[n for n in nearest if n >= 0]]
    return np.bincount(hits, minlength=size)


def _pair_matches(query: np.ndarray, other: np.ndarray) -> list[tuple[int, int]]:
    """Lowe's ratio test between two photos' descriptors."""
    found = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query, other, k=2)
    return [(m.queryIdx, m.trainIdx) for m, n in (f for f in found if len(f) == 2) if m.distance < 0.75 * n.distance]


def feature_links(prints: Sequence[Fingerprint], queries: Sequence[int], pool: Sequence[int]) -> list[Link]:
    """Each query photo (upright and mirrored) against every ``pool`` photo: descriptor votes,
    then a homography verified by RANSAC; the link's score is its inlier count."""
    pool = [j for j in pool if prints[j].descriptors is not None and len(prints[j].descriptors) >= MIN_INLIERS]
    if not pool or not queries:
        return []
    owner = np.concatenate([np.full(len(prints[j].descriptors), k) for k, j in enumerate(pool)])
    cv2.setRNGSeed(0)  # the k-d forest is randomised: the same photos must give the same links
    index = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 48})
    index.add([np.concatenate([prints[j].descriptors for j in pool])])
    index.train()
    links = []
    position = {j: k for k, j in enumerate(pool)}
    for i in queries:
        query = prints[i]
        skip = position.get(i)
        found: dict[int, float] = {}
        for points, descriptors in ((query.keypoints, query.descriptors), query.mirrored):
            if descriptors is None or len(descriptors) < MIN_INLIERS:
                continue
            votes = _votes(descriptors, index, skip, owner, len(pool))
            for k in np.argsort(-votes)[:CANDIDATES]:
                if votes[k] < MIN_VOTES:
                    break
                matches = _pair_matches(descriptors, prints[pool[k]].descriptors)
                score = verify(query, points, prints[pool[k]], matches)
                if score is not None:
                    found[pool[k]] = max(score, found.get(pool[k], -1.0))
        links += [Link(i, j, "features", round(score, 3)) for j, score in found.items()]
    return links


def group_split(prints: Sequence[Fingerprint], splits: Sequence[str],
                progress: Callable[[str], None] | None = None) -> Groups:
    """Near-duplicate groups of one source's photos, with each link that made them.

    Hashes are compared between every pair. Features are compared from each val photo to every
    other photo, and again from every photo that a group moved, until no link crosses a split:
    train-to-train feature links cannot leak, so they are not looked for.
    """
    n = len(prints)
    groups = Groups.of(n)
    for link in hash_links(prints, list(range(n))):
        groups.union(link)
    queries = [i for i in range(n) if splits[i] == "val"]
    checked: set[int] = set()
    while queries:
        if progress:
            progress(f"matching features of {len(queries)} photos against {n}")
        for link in feature_links(prints, queries, range(n)):
            groups.union(link)
        checked.update(queries)
        placed = assign(groups, splits)
        # photos whose split changed meet new neighbours: match them too
        queries = [i for i in range(n) if placed[i] != splits[i] and i not in checked]
    return groups


def default_cache_dir() -> Path:
    """Where groupings found are kept between merges (``training.datasets``: keyed by content)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trivue" / "near-duplicates"


def save_cached(path: Path, data: object) -> None:
    """Write a cached grouping whole or not at all: merges running side by side (the test suite's
    workers) share the cache and must never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)


def find_groups(images: Sequence[Path], splits: Sequence[str], label: str = "") -> Groups:
    """Fingerprint ``images`` (with a progress bar) and group the near-duplicates among them."""
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import track

    # SIFT on a few thousand photos takes minutes on one core: one process per core
    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        prints = list(track(pool.map(_cached_fingerprint, images, chunksize=16), total=len(images),
                            description=f"fingerprints {label}".strip(), transient=True))
    return group_split(prints, splits, progress=lambda text: log.info("%s: %s", label, text))


def _cached_fingerprint(path: Path) -> Fingerprint:
    """``fingerprint`` through the shared cache (a module-level function: pool workers pickle it)."""
    return fingerprint(path, fingerprint_cache_dir())


def leaks(images: Sequence[Path], splits: Sequence[str], label: str = "") -> list[Link]:
    """Same-shot links between a val photo and a train photo of a finished split (the check run on
    a merge's result): hashes between every pair, features from every val photo."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        prints = list(pool.map(_cached_fingerprint, images, chunksize=16))
    queries = [i for i, split in enumerate(splits) if split == "val"]
    links = hash_links(prints, list(range(len(prints)))) + feature_links(prints, queries, range(len(prints)))
    return [link for link in links if splits[link.a] != splits[link.b]]


def assign(groups: Groups, splits: Sequence[str]) -> list[str]:
    """One split per group, changing the dataset's own split as little as possible.

    Each group goes where most of its photos are (train on a tie). Where that drains val below
    its size (bursts of one scene straddling the splits), whole groups that held val photos go
    to val, the most-val and smallest first, until val is back to its size: validation keeps
    enough photos to mean something, and no group is ever cut.
    """
    placed = list(splits)
    members = list(groups.members().values())
    for group in members:
        in_val = sum(splits[i] == "val" for i in group)
        target = "val" if in_val * 2 > len(group) else "train"
        for i in group:
            placed[i] = target
    wanted = sum(s == "val" for s in splits)
    have = sum(p == "val" for p in placed)
    candidates = [g for g in members if placed[g[0]] == "train" and any(splits[i] == "val" for i in g)]
    candidates.sort(key=lambda g: (-sum(splits[i] == "val" for i in g) / len(g), len(g), min(g)))
    for group in candidates:
        if have >= wanted:
            break
        if have + len(group) > wanted * 1.25:
            continue  # would overshoot: a smaller group may fit
        for i in group:
            placed[i] = "val"
        have += len(group)
    return placed


def crossing_links(groups: Groups, splits: Sequence[str]) -> list[Link]:
    """Links whose two photos sit in different splits: leaks."""
    return [link for link in groups.links if splits[link.a] != splits[link.b]]


def count_groups(n: int, links: Sequence[tuple[int, int, str, float]]) -> int:
    """Groups of two or more photos among ``n`` that ``links`` (stored as tuples) join."""
    groups = Groups.of(n)
    for a, b, kind, score in links:
        groups.union(Link(a, b, kind, score))
    return sum(len(m) > 1 for m in groups.members().values())
