"""``trivue models rollout`` of a model the trucks' rules refuse warns as ``trivue models publish`` does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.fleet.models import derived
from trivue.cli import main


def test_a_rollout_the_trucks_will_refuse_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Publishing warned, once; the rollout days later (of the COCO model, say) said nothing, and each
    canary truck refused the model."""
    for name in [n for n in os.environ if n.startswith("TRIVUE_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "server"), "known_trucks": ["benne-01", "benne-02"]}))
    model = derived(tmp_path / "m", "2026.12.03-sock", rename={"bag": "sock"})
    assert main(["models", "publish", str(model), "--config", str(config)]) == 0
    sha, published = capsys.readouterr()
    sha = sha.strip()
    warned = sorted(line for line in published.splitlines() if line.startswith("warning: "))
    assert warned and all("will refuse it: model class 'sock' has no rule" in line for line in warned), published

    assert main(["models", "rollout", sha[:12], "--canary", "1", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert sorted(line for line in err.splitlines() if line.startswith("warning: trucks on ")) == warned, err
    assert "rollout 1: canary ['benne-01'] now" in err, err
    assert main(["models", "rollout", sha[:12], "--confirm", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert sorted(line for line in err.splitlines() if line.startswith("warning: trucks on ")) == warned, err
