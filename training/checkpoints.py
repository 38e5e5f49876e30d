"""Checkpoints that survive a kill: a run can end at any moment (a power cut, a session's end) and
``trivue train --resume`` must find a whole ``last.pt``.

Ultralytics writes ``last.pt`` and ``best.pt`` in place, so a run killed during the write leaves a
truncated file that torch cannot read (seen: ``tests/training/test_resume.py`` killed a run in that
window about one time in three). Here each is written beside, flushed to disk, then renamed over
the old one: a kill leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ultralytics.models.yolo.detect import DetectionTrainer


def _beside(path: Path) -> Path:
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class WholeCheckpoints(DetectionTrainer):
    """Ultralytics' detection trainer whose ``save_model`` never leaves a truncated checkpoint."""

    def save_model(self) -> bool:
        last, best = self.last, self.best
        for stale in (_beside(last), _beside(best)):  # half-written by a run killed earlier
            stale.unlink(missing_ok=True)
        self.last, self.best = _beside(last), _beside(best)
        try:
            saved = super().save_model()
        finally:
            self.last, self.best = last, best
        for written, final in ((_beside(last), last), (_beside(best), best)):  # best only when it improved
            if written.exists():
                with written.open("rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(written, final)
        return saved


def trim_results(results: Path, epoch: int) -> int:
    """Drop the rows of ``results.csv`` after a checkpoint's ``epoch`` (0-based, as Ultralytics
    stores it); returns how many. A run killed after logging an epoch but before its checkpoint
    was renamed would otherwise log that epoch twice once resumed."""
    if not results.is_file():
        return 0
    header, *rows = results.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [row for row in rows if row.strip() and int(float(row.split(",", 1)[0])) <= epoch + 1]
    if len(kept) < len(rows):
        beside = _beside(results)
        beside.write_text(header + "".join(kept), encoding="utf-8")
        os.replace(beside, results)
    return len(rows) - len(kept)
