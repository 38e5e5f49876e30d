"""`trivue train --resume`: a run killed mid-training (a session's end, a power cut) goes on from
its last epoch instead of starting again."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.test_pipeline import bags_only

pytestmark = pytest.mark.train
# An epoch of this tiny run takes about 0.6 s alone: 7 epochs still to run when the first checkpoint
# lands leave the poll below seconds to kill it mid-run (40 epochs spent half a minute resuming).
EPOCHS = 8


def epochs_in(results: Path) -> list[int]:
    with results.open(newline="") as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle, skipinitialspace=True)]


@pytest.mark.heavy(cpu_s=30)
def test_a_killed_run_resumes_from_its_last_epoch(shared_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    mapping = bags_only(shared_dir, tmp_path, {"train": 12, "val": 4}, "resume-test")
    run = tmp_path / "run"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "HTTPS_PROXY": "http://127.0.0.1:9"}
    command = [sys.executable, "-m", "trivue", "train", "--run", str(run)]
    first = subprocess.Popen([*command, "--data", str(mapping), "--init", "scratch",
                              "--epochs", str(EPOCHS), "--imgsz", "64", "--batch", "8", "--no-plots", "--threads", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = run / "train" / "weights" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the run ended before it could be killed: nothing was tested"
    assert last.is_file(), "no epoch finished in time"
    # At once, no clean shutdown: what a power cut leaves. Killed in the middle of a checkpoint's
    # write, a run wrote in place (Ultralytics' own way) left a last.pt torch cannot read.
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    import torch

    # the epoch the checkpoint holds (0-based; results.csv may have logged one more before the kill)
    saved = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert 0 <= saved < EPOCHS - 1

    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from epoch {saved + 2} to {EPOCHS} total epochs" in resumed.stdout + resumed.stderr
    # went on, not started again, and no epoch logged twice
    assert epochs_in(run / "train" / "results.csv") == list(range(1, EPOCHS + 1))
    assert not list(last.parent.glob("*.partial.pt"))
    assert (run / "train" / "weights" / "best.pt").is_file()


def test_resume_without_a_run_says_so(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trivue", "train", "--run", str(tmp_path / "run"), "--resume"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "nothing to resume" in result.stderr and "Traceback" not in result.stderr


def test_a_checkpoint_cut_short_is_refused_with_the_reason(tmp_path: Path) -> None:
    """A run of an older trivue killed mid-write: one line saying so, no traceback."""
    run = tmp_path / "run"
    (run / "train" / "weights").mkdir(parents=True)
    (run / "train" / "weights" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "trivue", "train", "--run", str(run), "--resume"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "last.pt cannot be read: it was cut short while being written" in result.stderr
    assert "Traceback" not in result.stderr


def test_results_after_the_checkpoints_epoch_are_dropped(tmp_path: Path) -> None:
    from training.checkpoints import trim_results

    results = tmp_path / "results.csv"
    results.write_text("epoch,time,metrics/mAP50(B)\n1,2.0,0.1\n2,4.0,0.2\n3,6.0,0.3\n")
    assert trim_results(results, 1) == 1  # the checkpoint holds epoch index 1: the 2nd epoch
    assert epochs_in(results) == [1, 2]
    assert trim_results(results, 1) == 0 and trim_results(tmp_path / "absent.csv", 0) == 0


def test_resuming_a_finished_run_stops_with_a_message_and_downloads_nothing(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("ultralytics")
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from training.train import TrainConfig, TrainError, train

    monkeypatch.chdir(tmp_path)  # Ultralytics' fresh run would write ./runs and ../datasets
    run = tmp_path / "run"
    last = run / "train" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    # what a finished run leaves: Ultralytics strips the optimizer and sets epoch -1
    torch.save({"epoch": -1, "optimizer": None, "model": DetectionModel("yolov8n.yaml", nc=1, verbose=False),
                "train_args": {"imgsz": 64}}, last)
    # Ultralytics took it as "start a new run" on coco8.yaml and downloaded coco8.zip from GitHub
    monkeypatch.setattr("ultralytics.utils.downloads.safe_download",
                        lambda *a, **k: pytest.fail(f"download attempted: {a} {k}"))
    with pytest.raises(TrainError, match="nothing to resume, its training finished"):
        train(TrainConfig(data=tmp_path / "data.yaml", run_dir=run), resume=True)
    assert not (tmp_path / "runs").exists()
