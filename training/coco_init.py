"""COCO initialisation: rebuild a float YOLOv8n checkpoint from the shared INT8 ONNX export.

The ONNX holds every conv of ``YOLO('yolov8n.yaml')`` under its PyTorch name, quantised per
tensor (``W = (q - zero_point) * scale``) with the BatchNorm folded into a float bias. Loading W
into each conv and an identity BN reproduces the ONNX at inference, but not in training mode,
where batch statistics replace the running ones and the first epoch starts far off. So each BN is
re-expressed with statistics measured on real photos: running stats = measured pre-BN mean/var,
weight = sqrt(var + eps), bias = mean + fused bias. Inference is unchanged (the BN is still the
identity plus the bias), and training-mode batches normalise close to what the weights expect.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the train extra (torch, Ultralytics): imported where used, in the functions
    import torch
    from ultralytics.nn.tasks import DetectionModel

log = logging.getLogger(__name__)

STATS_IMAGES = 32
STATS_IMGSZ = 640


class InitError(RuntimeError):
    """The ONNX does not match the architecture it is supposed to hold."""


def read_onnx_weights(onnx_path: Path) -> tuple[dict[str, np.ndarray], dict[int, str]]:
    """Dequantised float weights by PyTorch module name, and the class names of the export."""
    import ast

    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights: dict[str, np.ndarray] = {}
    for name, value in init.items():
        if name.endswith(".weight") and name.startswith("model."):  # a float export (BN folded)
            weights[name] = value.astype(np.float32)
        elif name.endswith(".weight_quantized"):
            module = name.removesuffix(".weight_quantized")
            scale = init[f"{module}.weight_scale"].astype(np.float32)
            zero = init[f"{module}.weight_zero_point"].astype(np.float32)
            weights[f"{module}.weight"] = (value.astype(np.float32) - zero) * scale
        elif name.endswith(".bias"):
            weights[name] = value.astype(np.float32)
    meta = {p.key: p.value for p in model.metadata_props}
    names = ast.literal_eval(meta["names"]) if "names" in meta else {}
    return weights, names


def build_identity_model(onnx_path: Path) -> DetectionModel:
    """YOLOv8n holding the ONNX weights, each BN an identity plus the fused bias.

    The class branch keeps the export's width and classes: Ultralytics re-targets it to the
    data's classes by name when training starts (rows of known classes kept, new ones fresh).
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel

    weights, names = read_onnx_weights(onnx_path)
    model = DetectionModel("yolov8n.yaml", nc=len(names) or 80, verbose=False)
    _match_class_width(model, weights)
    modules = dict(model.named_modules())
    loaded = 0
    with torch.no_grad():
        for key, value in weights.items():
            module_name, kind = key.rsplit(".", 1)
            if module_name.endswith(".dfl.conv"):
                continue  # fixed 0..15 projection, built identical
            conv = modules.get(module_name)
            if not isinstance(conv, torch.nn.Conv2d):
                raise InitError(f"{onnx_path}: '{module_name}' has no matching conv in yolov8n")
            target = conv.weight if kind == "weight" else _bias_target(modules, module_name, conv)
            if tuple(target.shape) != value.shape:
                raise InitError(f"{onnx_path}: {key} shape {value.shape} != model {tuple(target.shape)}")
            target.copy_(torch.from_numpy(value))
            loaded += 1
    expected = sum(1 for k in weights if not k.startswith("model.22.dfl"))
    if loaded != expected or loaded < 120:
        raise InitError(f"{onnx_path}: loaded {loaded} of {expected} tensors")
    model.names = {int(k): str(v) for k, v in names.items()}
    return model.eval()


def _match_class_width(model, weights: dict[str, np.ndarray]) -> None:
    """Give the class branch the export's hidden width.

    Ultralytics sizes it max(64, nc) when built, so a model fine-tuned from the 80-class COCO
    weights keeps 80 channels whatever its own class count: rebuild the branch to match.
    """
    from torch import nn
    from ultralytics.nn.modules import Conv

    head = model.model[-1]
    key = f"model.{len(model.model) - 1}.cv3.0.0.conv.weight"
    if key not in weights or head.cv3[0][0].conv.out_channels == weights[key].shape[0]:
        return
    width = weights[key].shape[0]
    head.cv3 = nn.ModuleList(
        nn.Sequential(Conv(branch[0].conv.in_channels, width, 3), Conv(width, width, 3), nn.Conv2d(width, head.nc, 1))
        for branch in head.cv3)
    head.bias_init()


def _bias_target(modules: dict, module_name: str, conv):
    """Where a fused bias goes: the BN of a Conv block, or the conv's own bias (head outputs)."""
    parent = modules.get(module_name.removesuffix(".conv"))
    bn = getattr(parent, "bn", None) if module_name.endswith(".conv") else None
    if bn is None:
        return conv.bias
    bn.weight.fill_(1.0)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    return bn.bias  # the caller copies the fused bias into it


def letterboxed_batch(images: list[Path], imgsz: int) -> torch.Tensor:
    import cv2
    import torch

    from vision.model import letterbox

    blobs = []
    for path in images:
        image = cv2.imread(str(path))
        if image is None:
            raise InitError(f"{path}: not a readable image")
        padded, _, _ = letterbox(image, (imgsz, imgsz))
        blobs.append(padded[:, :, ::-1].transpose(2, 0, 1) / 255.0)
    return torch.from_numpy(np.ascontiguousarray(np.stack(blobs))).float()


def reexpress_bn(model: torch.nn.Module, images: list[Path], imgsz: int = STATS_IMGSZ) -> None:
    """Give every BN the pre-BN statistics measured on ``images``; inference output is unchanged."""
    import torch

    from training.batchnorm import InputStatistics

    with InputStatistics(model) as statistics, torch.no_grad():
        model.eval()(letterboxed_batch(images, imgsz))
    statistics.restate_all()


def save_checkpoint(model: torch.nn.Module, out: Path) -> Path:
    """Write an Ultralytics-loadable checkpoint (``YOLO(out)`` and ``train(model=out)`` accept it)."""
    from datetime import datetime

    import torch
    from ultralytics import __version__

    out.parent.mkdir(parents=True, exist_ok=True)
    model.args = {"imgsz": STATS_IMGSZ, "task": "detect"}
    ckpt = {"date": datetime.now(UTC).isoformat(), "version": __version__, "epoch": -1,
            "model": model, "train_args": {"imgsz": STATS_IMGSZ, "task": "detect"},
            "license": "AGPL-3.0 (Ultralytics COCO weights)"}
    # written beside, then renamed: a run killed during the write must not leave a truncated file
    # that the next run's "already built" check would take (training.train.initial_weights)
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")
    try:
        torch.save(ckpt, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return out


def build_coco_init(onnx_path: Path, out: Path, stats_images: list[Path], real_stats: bool = True,
                    imgsz: int = STATS_IMGSZ) -> Path:
    """Dequantise ``onnx_path`` into ``out`` (.pt); BN statistics from ``stats_images`` at
    ``imgsz`` when asked.

    ``onnx_path`` is the shared COCO INT8 export or any float YOLOv8n ONNX export (a shipped
    Trivue model, for a warm start). A warm start measures at the size it will train at: the
    pre-BN statistics of a 320 px input are not those of a 640 px one, and training-mode batches
    normalise with the former.
    """
    model = build_identity_model(onnx_path)
    if real_stats:
        if not stats_images:
            raise InitError("no images to measure BatchNorm statistics on")
        reexpress_bn(model, stats_images[:STATS_IMAGES], imgsz)
    log.info("COCO init: %s -> %s (%s BN)", onnx_path, out, "measured" if real_stats else "identity")
    return save_checkpoint(model, out)
