"""bench/opendata.py at a tiny size: it generates, times both ways and checks they publish the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from base.paths import REPO_ROOT


def test_opendata_bench_runs_and_compares_both_ways(tmp_path: Path) -> None:
    args = ["--streets", "30", "--years", "2", "--repeat", "1", "--sqlite-only", "--cache-dir", str(tmp_path)]
    run = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "opendata.py"), *args], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "same CSV and GeoJSON both ways" in run.stdout
    lines = [line.split() for line in run.stdout.splitlines() if line.startswith("sqlite ")]
    assert [line[1] for line in lines] == ["every", "the", "every"], run.stdout  # the three exports
    assert all(int(line[-5].replace(",", "")) > 0 for line in lines), run.stdout  # rows published in each
    assert (tmp_path / "opendata-30x2.db").exists()
    again = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "opendata.py"), *args], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
    assert again.returncode == 0 and "(cached)" in again.stdout, again.stderr[-2000:]
