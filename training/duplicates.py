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

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from training.fingerprints import Fingerprint, cache_root, cached_fingerprint, oriented

log = logging.getLogger(__name__)

VERSION = 2  # bump when the detection changes: cached groupings are then recomputed

# Hash candidates (bits of 64). On the glass-ewaste photos every pair with pHash + dHash <= 26 was
# the same shot (its README), but dark hopper photos padded with white sit at 20-26 while being
# different bags: so a hash only proposes, and the pixels (MIN_NCC) decide, as for features.
HASH_SUM_MAX = 28
# Feature verification. SIFT, not ORB: on the heavily augmented hopper copies (mirrored, sheared,
# re-tiled) ORB found 10-18 matches per known pair and RANSAC kept 4-8, as for unrelated photos;
# SIFT keeps 24-136 inliers on the same pairs and 3-8 on distinct photos of the same hopper.
CANDIDATES = 6  # per photo, the photos with most descriptor votes are verified
MIN_VOTES = 8
MIN_INLIERS = 15
MIN_NCC = 0.8  # hash candidates: pixel agreement that confirms them
NCC_SIDE = 96  # correlation measured on blurred, small photos: fine texture is noise here
_BITS = np.array([bin(byte).count("1") for byte in range(256)], np.uint8)  # set bits of each byte value


@dataclass(frozen=True, slots=True)
class Link:
    """Why two photos are the same shot."""

    a: int
    b: int
    kind: str  # "hash" or "features"
    score: float  # hash: pHash + dHash bits; features: normalised correlation


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


def hash_links(prints: Sequence[Fingerprint], indices: Sequence[int]) -> list[Link]:
    """Pairs among ``indices`` whose hashes come close, in any orientation of the second, and whose
    pixels then agree."""
    if len(indices) < 2:
        return []
    # Stacked once and packed 8 bits a byte, (n, 8 orientations, 8 bytes): the bits that differ are
    # counted a byte at a time (``_BITS``). Stacking the later photos' 64 booleans again for every
    # row took most of the time.
    every_p = np.packbits(np.stack([prints[i].phash for i in indices]), axis=-1)
    every_d = np.packbits(np.stack([prints[i].dhash for i in indices]), axis=-1)
    links = []
    for row, i in enumerate(indices):
        # the distance from i upright to every later photo in each of its 8 orientations
        later = indices[row + 1:]
        if not later:
            break
        p = _BITS[every_p[row + 1:] ^ every_p[row, 0]].sum(2, dtype=np.int64)  # (m, 8)
        d = _BITS[every_d[row + 1:] ^ every_d[row, 0]].sum(2, dtype=np.int64)
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
    turned = oriented(b.small, orientation)
    content = oriented(b.content.astype(np.uint8), orientation)
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
    return cache_root() / "near-duplicates"


def save_cached(path: Path, data: object) -> None:
    """Write a cached grouping whole or not at all: merges running side by side (the test suite's
    workers) share the cache and must never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)


def fingerprint_all(images: Sequence[Path], label: str = "") -> list[Fingerprint]:
    """Every image's fingerprint (cached by content), with a progress bar named ``label``."""
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import track

    # SIFT on a few thousand photos takes minutes on one core: one process per core
    with ProcessPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        return list(track(pool.map(cached_fingerprint, images, chunksize=16), total=len(images),
                          description=f"fingerprints {label}".strip(), transient=True))


def find_groups(images: Sequence[Path], splits: Sequence[str], label: str = "") -> Groups:
    """Fingerprint ``images`` and group the near-duplicates among them."""
    return group_split(fingerprint_all(images, label), splits, progress=lambda text: log.info("%s: %s", label, text))


def leaks(images: Sequence[Path], splits: Sequence[str], label: str = "") -> list[Link]:
    """Same-shot links between a val photo and a train photo of a finished split (the check run on
    a merge's result): hashes between every pair, features from every val photo."""
    prints = fingerprint_all(images, label)
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
