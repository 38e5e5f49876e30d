"""Contact sheets (JPEG): what a model sees on each source, and which photos were judged the same shot.

People check a detector and a de-duplication by looking, not by reading tables: these PNGs go in
``docs/training.md``. Boxes are drawn with their class and confidence on val photos (labels thin
and grey, detections thick and coloured); near-duplicate pairs are shown side by side with the
evidence that linked them, next to the closest pairs that were *not* linked.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

TILE = 260  # px, longest side of one photo on a sheet
COLOURS = [(60, 60, 230), (40, 170, 40), (230, 130, 30), (30, 200, 220), (200, 60, 200),
           (120, 120, 240), (60, 200, 140), (0, 140, 255), (255, 90, 90), (160, 80, 40)]


class SheetError(ValueError):
    """Nothing to draw; the message says why."""


def _fit(image: np.ndarray) -> tuple[np.ndarray, float]:
    scale = TILE / max(image.shape[:2])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    tile = np.full((TILE, TILE, 3), 255, np.uint8)
    tile[:resized.shape[0], :resized.shape[1]] = resized
    return tile, scale


def _grid(tiles: list[np.ndarray], columns: int, title: str) -> np.ndarray:
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    rows[-1] = rows[-1] + [np.full_like(tiles[0], 255)] * (columns - len(rows[-1]))
    body = np.vstack([np.hstack(row) for row in rows])
    header = np.full((28, body.shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, body])


def prediction_sheet(model: Path, items: list, names: list[str], out: Path, per_source: int = 8,
                     conf: float = 0.25) -> list[Path]:
    """One PNG per source: ``per_source`` val photos with labels (grey) and detections (colour).

    ``items`` are ``training.evaluate.LabelledImage``; photos are taken evenly across the split.
    """
    from training.labels import read_labels
    from vision.model import Detector

    detector = Detector(model, conf=conf)
    by_source: dict[str, list] = {}
    for item in items:
        by_source.setdefault(item.source, []).append(item)
    if not by_source:
        raise SheetError("no val photos to draw")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source, group in by_source.items():
        step = max(len(group) // per_source, 1)
        tiles = []
        for item in group[::step][:per_source]:
            image = cv2.imread(str(item.image))
            if image is None:
                continue
            gt_xyxy, _ = read_labels(item.label, image.shape[1], image.shape[0])
            found = detector.detect(image)
            tile, scale = _fit(image)
            for box in gt_xyxy:
                x1, y1, x2, y2 = (int(v * scale) for v in box)
                cv2.rectangle(tile, (x1, y1), (x2, y2), (160, 160, 160), 1)
            for box, cls, score in zip(found.xyxy, found.class_id, found.confidence, strict=True):
                x1, y1, x2, y2 = (int(v * scale) for v in box)
                colour = COLOURS[int(cls) % len(COLOURS)]
                cv2.rectangle(tile, (x1, y1), (x2, y2), colour, 2)
                cv2.putText(tile, f"{names[int(cls)]} {score:.2f}", (x1 + 2, max(y1 + 12, 12)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
            tiles.append(tile)
        path = out / f"sees-{source}.jpg"  # photos: JPEG keeps the docs small
        cv2.imwrite(str(path), _grid(tiles, 4, f"{model.name} on {source} val (conf {conf}): "
                                              "grey = labels, colour = detections"))
        written.append(path)
    return written


def duplicates_sheet(merged: Path, out: Path, pairs: int = 6) -> Path:
    """Linked pairs per source (the strongest and the weakest links) from RUN/data/near-duplicates.json."""
    evidence = json.loads((merged / "near-duplicates.json").read_text(encoding="utf-8"))
    tiles = []
    for source in evidence:
        links = sorted(source["links"], key=lambda link: link["score"])
        chosen = links[:pairs // 2] + links[-(pairs - pairs // 2):] if len(links) > pairs else links
        for link in chosen:
            pair = []
            for name in (link["a"], link["b"]):
                found = next(iter((merged / "images").glob(f"*/{name}")), None)
                image = cv2.imread(str(found)) if found else None
                if image is None:
                    break
                pair.append(_fit(image)[0])
            if len(pair) == 2:
                tile = np.hstack(pair)
                label = f"{source['source']}: {link['kind']} {link['score']:g} ({link['a_split']})"
                cv2.putText(tile, label, (6, TILE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 230), 1, cv2.LINE_AA)
                tiles.append(tile)
    if not tiles:
        raise SheetError(f"{merged}: no near-duplicate links to show")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), _grid(tiles, 2, "Same shot, kept in one split: weakest and strongest links per source"))
    return out


def distinct_neighbours_sheet(merged: Path, source: str, out: Path, pairs: int = 6) -> Path:
    """The most alike photos of one source that were *not* judged the same shot (by their hashes):
    similar hoppers that must stay apart, for a person to check that they do."""
    import imagehash
    from PIL import Image

    from training.duplicates import Groups, Link

    evidence = next((s for s in json.loads((merged / "near-duplicates.json").read_text(encoding="utf-8"))
                     if s["source"] == source), None)
    if evidence is None:
        raise SheetError(f"{merged}: no source {source}")
    paths = sorted((merged / "images").glob(f"*/{source}__*"))
    index = {p.name: i for i, p in enumerate(paths)}
    groups = Groups.of(len(paths))
    for link in evidence["links"]:
        if link["a"] in index and link["b"] in index:
            groups.union(Link(index[link["a"]], index[link["b"]], link["kind"], link["score"]))
    hashes = []
    for path in paths:
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        hashes.append(np.concatenate([imagehash.phash(Image.fromarray(grey)).hash.ravel(),
                                      imagehash.dhash(Image.fromarray(grey)).hash.ravel()]))
    matrix = np.stack(hashes)
    distance = (matrix[:, None, :] != matrix[None, :, :]).sum(2)
    candidates = [(int(distance[i, j]), i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))
                  if groups.find(i) != groups.find(j)]
    tiles = []
    for score, i, j in sorted(candidates)[:pairs]:
        tile = np.hstack([_fit(cv2.imread(str(paths[i])))[0], _fit(cv2.imread(str(paths[j])))[0]])
        cv2.putText(tile, f"hash distance {score}: different photos, not linked", (6, TILE - 8),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 140, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        raise SheetError(f"{merged}: {source} has no unlinked pair")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), _grid(tiles, 2, f"{source}: the most alike photos left apart (distinct shots)"))
    return out
