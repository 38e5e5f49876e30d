"""Training on sources that each label only some classes (partial labels).

Each public dataset labels its own classes only: hopper photos hold bottles and glass nobody
boxed, litter photos hold no bags, the glass/e-waste photos label no bottles. Merged naively,
every such unboxed object is taught as background: the model learns that a bottle in a hopper
is nothing. Here the classification loss of an image is masked to the classes its source labels
(``trivue_sources`` in the merged data.yaml): an unboxed bottle in a hopper photo teaches
neither "bottle" nor "not bottle". Box losses are untouched (they come from labelled boxes only).

A mosaic glues four photos into one training image; its mask is only right when the four share
a source, so mosaic partners are drawn from the image's own source.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from ultralytics.data.augment import Mosaic
from ultralytics.data.dataset import YOLODataset
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss

from training.checkpoints import WholeCheckpoints
from training.datasets import SEPARATOR, SOURCES_KEY

METHOD_KEY = "trivue_missing_labels"  # naive | mask, in the merged data.yaml (absent: mask, below)


def masked(data: dict) -> dict[str, list[int]]:
    """Per-source class lists when the run masks missing labels, else nothing."""
    return data.get(SOURCES_KEY) or {} if data.get(METHOD_KEY, "mask") == "mask" else {}


def source_of(image: str) -> str:
    """The source of a merged image, from its file name ``<source>__<original>``."""
    name = Path(image).name
    return name.split(SEPARATOR, 1)[0] if SEPARATOR in name else ""


def class_masks(sources: dict[str, list[int]], nc: int) -> dict[str, torch.Tensor]:
    """Per source, a (nc,) float mask: 1 for the classes it labels."""
    masks = {}
    for name, ids in sources.items():
        mask = torch.zeros(nc)
        mask[list(ids)] = 1.0
        masks[name] = mask
    return masks


class PartialLabelLoss(v8DetectionLoss):
    """YOLO detection loss whose class BCE counts only the classes each image's source labels.

    Ultralytics multiplies the per-anchor, per-class BCE by ``class_weights`` (1, 1, nc); here
    that weight becomes the batch's (B, 1, nc) source masks before each call. An image of an
    unknown source keeps every class (its labels are taken as exhaustive).
    """

    def __init__(self, model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
        super().__init__(model)
        self.masks = {k: v.to(self.device) for k, v in masks.items()}
        self.full = torch.ones(self.nc, device=self.device)
        self.base_weights = self.class_weights  # Ultralytics' cls_pw weights, (1, 1, nc) or None

    def get_assigned_targets_and_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any],
                                      **assign_kwargs: Any) -> tuple:
        rows = [self.masks.get(source_of(f), self.full) for f in batch["im_file"]]
        weights = torch.stack(rows).unsqueeze(1)
        self.class_weights = weights if self.base_weights is None else weights * self.base_weights
        return super().get_assigned_targets_and_loss(preds, batch, **assign_kwargs)


class SameSourceMosaic(Mosaic):
    """Mosaic whose partner images come from the first image's own source."""

    by_source: dict[str, list[int]]
    source_of_index: list[str]

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        self.current = source_of(labels.get("im_file", ""))
        return super().__call__(labels)

    def get_indexes(self) -> list[int]:
        pool = self.by_source.get(self.current) or range(len(self.dataset))
        return random.choices(pool, k=self.n - 1)


def _mosaics(transform: Any) -> list[Mosaic]:
    """Every Mosaic inside Ultralytics' nested Compose pipelines."""
    found = []
    if isinstance(transform, Mosaic):
        found.append(transform)
    for child in getattr(transform, "transforms", None) or []:
        found += _mosaics(child)
    pre = getattr(transform, "pre_transform", None)
    if pre is not None:
        found += _mosaics(pre)
    return found


class PartialLabelTrainer(WholeCheckpoints):
    """Ultralytics' detection trainer with per-source class masks and same-source mosaics.

    Without ``trivue_sources`` in the data (a plain data.yaml), or with ``trivue_missing_labels:
    naive``, it is Ultralytics' trainer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback("on_train_start", _install_loss)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> YOLODataset:
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train" and masked(self.data):
            by_source: dict[str, list[int]] = {}
            for index, image in enumerate(dataset.im_files):
                by_source.setdefault(source_of(image), []).append(index)
            for mosaic in _mosaics(dataset.transforms):
                mosaic.__class__ = SameSourceMosaic
                mosaic.by_source = by_source
        return dataset


def _install_loss(trainer: DetectionTrainer) -> None:
    sources = masked(trainer.data)
    if not sources:
        return
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    model.criterion = PartialLabelLoss(model, class_masks(sources, model.model[-1].nc))
