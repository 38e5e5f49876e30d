"""What a truck installs (docs/edge.md, "What a truck installs"): the [edge] extra names what the agent
imports, and the agent runs with the packages the truck's install removes (GUI OpenCV, matplotlib, PyAV:
required by trackers and supervision, never imported) made unimportable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

from base.paths import REPO_ROOT

REMOVED = ("matplotlib", "av", "amqtt")  # what docs/edge.md's install removes, or never installs

# Runs in a fresh interpreter: the removed packages cannot be imported, then the agent's modules are,
# and a few burst lifts go through the real tracker, recorder and evidence photo (no model: scripted).
AGENT = r"""
import importlib.abc, json, sys
from importlib.metadata import packages_distributions

class Removed(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REMOVED:
            raise ImportError(f"{name} is not installed on a truck")

sys.meta_path.insert(0, Removed())
import trivue.cli, edge.cli, edge.app  # the command, then the agent as `trivue edge` builds it
from pathlib import Path
import tempfile
import cv2, numpy as np
from edge.app import Agent
from edge.config import load_settings
from tests.edge.helpers import ScriptedDetector

root = Path(tempfile.mkdtemp())
for lift in range(3):
    (root / "bursts" / f"b{lift}").mkdir(parents=True)
    for shot in range(3):
        image = np.full((240, 320, 3), 40 * shot, np.uint8)
        cv2.imwrite(str(root / "bursts" / f"b{lift}" / f"{shot}.jpg"), image)
settings = load_settings(None, {"truck_id": "T-INSTALL", "source": str(root / "bursts"), "stream": "recyclables",
                                "outbox": {"path": str(root / "o.sqlite3")}, "evidence": {"dir": str(root / "e")},
                                "uplink": {"broker": "mqtt://127.0.0.1:9"}}, environ={})
glass = (10.0, 10.0, 90.0, 90.0, 0.9, 1)
agent = Agent.create(settings, detector=ScriptedDetector([[glass]] * 9))
lifts = agent.pipeline.run(agent.frame_source(once=True))
depth = agent.outbox.depth()
agent.close()
names = {module.split(".")[0] for module in sys.modules}
table = packages_distributions()
used = sorted({dist for name in names for dist in table.get(name, [])})
print(json.dumps({"lifts": lifts, "depth": depth, "distributions": used}))
"""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _edge_extra() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(requirement) for requirement in project["optional-dependencies"]["edge"]}


def _run_agent() -> dict[str, object]:
    script = f"REMOVED = {REMOVED!r}\n{AGENT}"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_agent_runs_without_what_the_truck_install_removes() -> None:
    """Three lifts, each with its photo (glass in the recyclables), with matplotlib, PyAV and amqtt
    unimportable: the truck can do without them."""
    ran = _run_agent()
    assert ran["lifts"] == 3 and ran["depth"] == 6
    used = {_name(dist) for dist in ran["distributions"]}  # type: ignore[union-attr]
    assert not used & set(REMOVED)
    # every package of the [edge] extra is one the agent imports: nothing in it for the demo or the server
    assert _edge_extra() <= used | {"opencv-python-headless"}, _edge_extra() - used
