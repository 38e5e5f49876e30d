"""The card's "N epochs in M min" covers the whole training, also after ``trivue train --resume``.

Ultralytics' ``results.csv`` logs, per epoch, the seconds since *this process* started training:
a resumed run's clock starts again at 0. The card took the last row's time, so a run killed after
50 minutes and resumed for 10 said "in 10 min".
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx")  # training.export's imports


def write_results(run: Path, times: list[float]) -> None:
    (run / "train").mkdir(parents=True)
    rows = "".join(f"{epoch},{time},1.0\n" for epoch, time in enumerate(times, start=1))
    (run / "train" / "results.csv").write_text("epoch,time,train/box_loss\n" + rows)


def test_training_minutes_add_up_across_a_resume(tmp_path: Path) -> None:
    from training.export import progress

    write_results(tmp_path / "straight", [600.0, 1200.0, 1800.0])
    assert progress(tmp_path / "straight") == {"epochs_done": 3, "train_minutes": 30.0}
    # killed after epoch 2 (20 min), resumed: epochs 3 and 4 took 10 more minutes
    write_results(tmp_path / "resumed", [600.0, 1200.0, 300.0, 600.0])
    assert progress(tmp_path / "resumed") == {"epochs_done": 4, "train_minutes": 30.0}
