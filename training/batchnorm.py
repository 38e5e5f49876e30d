"""BatchNorm statistics of a rebuilt model, measured on the batches it is about to train on.

A model rebuilt from an ONNX export (``training.coco_init``: the shared COCO weights or a shipped
Trivue model) has its BatchNorms folded into the convs; the rebuild re-expresses each BN with
statistics measured on a few clean photos. In training mode every BN normalises with the batch's
own statistics instead, and its running statistics drift to those of the *augmented* training
batches (HSV jitter, zoom, translation, mosaics). Each BN's scale was set for the clean photos, so
after that drift the model computes something else: measured on the shipped 2026.12.03 model,
one epoch of "training" at a learning rate of 1e-5 (no weight tensor changed by more than 0.15 %) took
Ultralytics' val mAP50 from 0.783 to 0.678, with only the running statistics changed (a
channel's standard deviation by up to 19 %). That is the loss every continuation of a shipped
model paid in its first epoch (docs/training.md).

So before a warm start's first epoch, ``align_to_training_batches`` measures each BN's input on
batches drawn from the run's own training dataset, with its own augmentation, and re-states the
BN around those statistics without changing what the model computes (``restate``). Training-mode
batches then normalise as the weights expect, and the running statistics stay where they are.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

BATCHES = 32  # of the run's batch size: ~500 augmented photos, ~10 s of CPU at 320 px


def restate(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Give ``bn`` the running statistics (``mean``, ``var``) of its input; eval mode computes the
    same function as before (scale and shift are carried into its weight and bias)."""
    with torch.no_grad():
        old_std = torch.sqrt(bn.running_var + bn.eps)
        bn.bias.add_(bn.weight / old_std * (mean - bn.running_mean))
        bn.weight.mul_(torch.sqrt(var + bn.eps) / old_std)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


class InputStatistics:
    """Per-channel mean and variance of every BN's input over several forward passes (float64 sums,
    so that ~500 images of 320 px do not lose the variance to rounding). As a context manager, the
    hooks are removed on leaving it."""

    def __init__(self, model: nn.Module) -> None:
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self._sums: dict[int, list[Any]] = {}
        self._handles = [bn.register_forward_pre_hook(self._hook) for bn in self.bns]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach().double()
        count = x.numel() // x.shape[1]
        sums = self._sums.setdefault(id(module), [0, 0.0, 0.0])
        sums[0] += count
        sums[1] = sums[1] + x.sum((0, 2, 3))
        sums[2] = sums[2] + (x * x).sum((0, 2, 3))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __enter__(self) -> InputStatistics:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def restate_all(self) -> int:
        """``restate`` every BN seen; returns how many."""
        done = 0
        for bn in self.bns:
            if id(bn) not in self._sums:
                continue
            count, total, squares = self._sums[id(bn)]
            mean = total / count
            var = (squares / count - mean * mean).clamp_min(0.0)
            restate(bn, mean.to(bn.running_mean), var.to(bn.running_var))
            done += 1
        return done


def align_to_training_batches(trainer: Any, batches: int = BATCHES) -> None:
    """Ultralytics callback (``on_pretrain_routine_end``): re-state every BN of ``trainer.model``
    around its input statistics on the run's first-epoch training batches, then restart the EMA
    from the re-stated model. Registered by ``training.train`` for ONNX warm starts only."""
    from ultralytics.utils.torch_utils import ModelEMA, unwrap_model

    if trainer.start_epoch > 0:  # a resumed run: its BNs trained on these batches, its EMA was restored
        return
    dataset = trainer.train_loader.dataset
    if trainer.args.close_mosaic >= trainer.epochs:
        # the first epoch trains without mosaics (Ultralytics closes them when it starts): measure so
        trainer._close_dataloader_mosaic()
    model = unwrap_model(trainer.model)
    size = trainer.train_loader.batch_size or trainer.batch_size
    picks = random.Random(trainer.args.seed).sample(range(len(dataset)), min(len(dataset), batches * size))
    was_training = model.training
    try:
        with InputStatistics(model.eval()) as statistics, torch.no_grad():
            for start in range(0, len(picks), size):
                batch = dataset.collate_fn([dataset[i] for i in picks[start:start + size]])
                model(trainer.preprocess_batch(batch)["img"])
    finally:
        model.train(was_training)
    count = statistics.restate_all()
    trainer.ema = ModelEMA(trainer.model)
    log.info("BatchNorm: %d layers re-stated on %d augmented training photos", count, len(picks))
