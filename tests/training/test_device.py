"""`trivue train --device`: the forms it takes, what it checks against torch, what reaches Ultralytics.

The suite's machines have no GPU: the refusal is tested for real, the GPU side with torch's CUDA
queries replaced (what a machine with a GPU answers), and the arguments Ultralytics receives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.device import Device, DeviceError, parse_device, resolve_device
from training.train import TrainConfig, TrainError, train, ultralytics_args

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "indices"), [
    ("cpu", None), ("CPU", None), ("cuda", [0]), ("cuda:1", [1]), ("0", [0]), ("0,1", [0, 1]), (" 2 ", [2]),
])
def test_device_forms(text: str, indices: list[int] | None) -> None:
    assert parse_device(text) == indices


@pytest.mark.parametrize(("text", "message"), [
    ("gpu", "--device gpu: not a device; use cpu, cuda, cuda:N"),
    ("cuda:x", "--device cuda:x: not a device"),
    ("", "--device : not a device"),
    ("0,0", "--device 0,0: a GPU is named twice"),
    ("-1", "--device -1: not a device"),
])
def test_a_device_not_understood_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_device(text)


def test_the_cpu_trains_in_float32() -> None:
    device = resolve_device("cpu")
    assert device == Device("cpu", "fp32") and device.amp is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused() -> None:
    with pytest.raises(DeviceError, match=r"--device cuda: torch .* sees no CUDA GPU on this machine; "
                                          r"train with --device cpu"):
        resolve_device("cuda")


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)


def test_a_gpu_trains_in_float32_unless_bfloat16_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2, (9, 0))  # Hopper
    assert resolve_device("cuda:1") == Device("1", "fp32")
    device = resolve_device("0,1", "bf16")
    assert device == Device("0,1", "bf16") and device.amp == "bf16"


def test_bfloat16_is_refused_where_ultralytics_cannot_train_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="--precision bf16: Ultralytics trains bfloat16 on CUDA GPUs only"):
        resolve_device("cpu", "bf16")
    with pytest.raises(DeviceError, match="--precision fp16: choose one of fp32, bf16"):
        resolve_device("cpu", "fp16")  # float16's AMP check downloads a model
    fake_gpus(monkeypatch, 1, (7, 5))  # Turing: bfloat16 only emulated
    assert resolve_device("cuda") == Device("0", "fp32")
    with pytest.raises(DeviceError, match=r"--precision bf16: GPU 0 has no native bfloat16"):
        resolve_device("cuda", "bf16")


def test_a_gpu_the_machine_lacks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2, (9, 0))
    with pytest.raises(DeviceError, match=r"--device 0,3: no GPU 3 here \(this machine has 2: 0 to 1\)"):
        resolve_device("0,3")


def test_ultralytics_receives_the_device_and_its_precision(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    config = TrainConfig(data=data, run_dir=tmp_path, device="0")
    on_cpu = ultralytics_args(config, data)
    assert (on_cpu["device"], on_cpu["amp"]) == ("cpu", False)
    assert ultralytics_args(config, data, Device("0", "fp32"))["amp"] is False
    on_gpu = ultralytics_args(config, data, Device("0", "bf16"))
    assert (on_gpu["device"], on_gpu["amp"]) == ("0", "bf16")


def test_a_bad_device_stops_training_before_anything_is_written(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path / "data.yaml", run_dir=tmp_path / "run", device="tpu")
    with pytest.raises(TrainError, match="--device tpu: not a device"):
        train(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_trivue_train_on_a_gpu_it_does_not_have_says_so(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trivue", "train", "--run", str(tmp_path / "run"),
                             "--device", "cuda:0"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--device cuda:0: torch" in result.stderr and "sees no CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()

