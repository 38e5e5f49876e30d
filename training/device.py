"""Where a training run computes: the CPU (the default: every machine has one) or CUDA GPUs.

A métropole that has a workstation GPU, or rents one for an afternoon, trains in minutes what
takes a night on a 2-core server; the data, the run folder and the exported model are the same.

Precision on a GPU is bfloat16 where the GPU has it (Ampere and newer): no loss scaling, and
Ultralytics runs no AMP check for it. Its float16 AMP check downloads a YOLO26n model to compare
against, which an offline machine cannot do, so float16 is never chosen; a GPU without bfloat16
trains in float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = "cpu, cuda, cuda:N or GPU indices such as 0 or 0,1"


class DeviceError(ValueError):
    """A device that cannot train here; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Device:
    name: str  # as Ultralytics takes it: "cpu", or GPU indices "0" / "0,1"
    precision: str  # fp32 | bf16

    @property
    def amp(self) -> bool | str:
        """Ultralytics' ``amp`` argument for this device."""
        return "bf16" if self.precision == "bf16" else False


def parse_device(text: str) -> list[int] | None:
    """GPU indices named by ``text``, or None for the CPU; a form not understood raises."""
    value = text.strip().lower()
    if value == "cpu":
        return None
    if value == "cuda":
        return [0]
    if match := re.fullmatch(r"cuda:(\d+)", value):
        return [int(match.group(1))]
    if re.fullmatch(r"\d+(,\d+)*", value):
        indices = [int(i) for i in value.split(",")]
        if len(set(indices)) != len(indices):
            raise DeviceError(f"--device {text}: a GPU is named twice")
        return indices
    raise DeviceError(f"--device {text}: not a device; use {FORMS}")


def resolve_device(text: str) -> Device:
    """The device to train on, checked against what torch sees on this machine."""
    indices = parse_device(text)
    if indices is None:
        return Device("cpu", "fp32")
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(f"--device {text}: torch {torch.__version__} ({build}) sees no CUDA GPU on this machine; "
                          "train with --device cpu")
    count = torch.cuda.device_count()
    if missing := [i for i in indices if i >= count]:
        raise DeviceError(f"--device {text}: no GPU {', '.join(map(str, missing))} here "
                          f"(this machine has {count}: 0 to {count - 1})")
    bf16 = all(_has_bf16(torch, i) for i in indices)
    return Device(",".join(map(str, indices)), "bf16" if bf16 else "fp32")


def _has_bf16(torch: object, index: int) -> bool:
    # Compute capability 8.0 (Ampere) and newer compute in bfloat16 natively; older GPUs would emulate it.
    major, _minor = torch.cuda.get_device_capability(index)  # type: ignore[attr-defined]
    return major >= 8
