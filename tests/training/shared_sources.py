"""A few real photos of a shared dataset, linked with their labels into a dataset of the same layout:
what the training tests merge, train on and count lifts of."""

from __future__ import annotations

from pathlib import Path


def small_source(shared: Path, name: str, out: Path, counts: dict[str, int], labelled_only: bool = False) -> Path:
    """The first ``counts[split]`` photos of each split of ``shared/datasets/name``, linked under
    ``out``; ``labelled_only`` passes over photos with an empty label file (an empty photo makes an
    empty lift, which says little)."""
    src = shared / "datasets" / name
    for split, n in counts.items():
        labels = src / "labels" / split
        photos = [p for p in sorted((src / "images" / split).glob("*.jpg"))
                  if not labelled_only or (labels / f"{p.stem}.txt").stat().st_size][:n]
        for image in photos:
            for kind, path in (("images", image), ("labels", labels / f"{image.stem}.txt")):
                target = out / kind / split / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
    (out / "data.yaml").write_text((src / "data.yaml").read_text())
    return out
