"""Where a training run computes: the CPU (the default: every machine has one) or CUDA GPUs.

A métropole that has a workstation GPU, or rents one for an afternoon, trains there what takes a
night on a 2-core server; the data, the run folder and the exported model are the same.

Precision is float32 unless ``--precision bf16`` asks for bfloat16, which Ultralytics trains on
CUDA GPUs of compute capability 8.0 and newer only. Float16 is not offered: its loss scaling
comes with Ultralytics' AMP check, which downloads a YOLO26n model to compare against, and an
offline machine cannot. Float32 is the default on a GPU too: it is the path every shipped model
took, and a nano model at 320 px keeps a GPU waiting on its data loader either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = "cpu, cuda, cuda:N or GPU indices such as 0 or 0,1"
PRECISIONS = ("fp32", "bf16")


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


def resolve_device(text: str, precision: str = "fp32") -> Device:
    """The device to train on, checked against what torch sees on this machine."""
    if precision not in PRECISIONS:
        raise DeviceError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    indices = parse_device(text)
    if indices is None:
        if precision != "fp32":
            raise DeviceError(f"--precision {precision}: Ultralytics trains bfloat16 on CUDA GPUs only, not on the CPU")
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
    if precision == "bf16" and (old := [i for i in indices if torch.cuda.get_device_capability(i)[0] < 8]):
        # Older GPUs only emulate bfloat16, and Ultralytics refuses it there.
        raise DeviceError(f"--precision bf16: GPU {', '.join(map(str, old))} has no native bfloat16 "
                          "(compute capability 8.0 or newer needed); use --precision fp32")
    return Device(",".join(map(str, indices)), precision)
