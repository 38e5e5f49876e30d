"""Two edge agents on one ``models.dir`` (``edge.models_lock``): their downloads of a model wrote the
same ``.part`` file, and one of them ran a model file whose hash was wrong. The second is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.app import Agent
from edge.config import ConfigError, EdgeSettings
from edge.models_lock import lock_file, lock_models_dir
from tests.edge.helpers import ScriptedDetector, unique_truck
from tests.edge.test_agent import settings_for

SERVER = "https://trivue.example.org"


def truck(tmp_path: Path, name: str, models: Path, server: str | None = SERVER) -> EdgeSettings:
    own = tmp_path / name
    (own / "bursts").mkdir(parents=True)
    return settings_for(own, own / "bursts", "mqtt://127.0.0.1:9", unique_truck(), alert={"broker": None},
                        gps={"source": None}, models={"server": server, "dir": str(models)})


def test_a_second_agent_on_the_same_models_dir_is_refused_until_the_first_stops(tmp_path: Path) -> None:
    shared = tmp_path / "models"
    first_settings, second_settings = truck(tmp_path, "a", shared), truck(tmp_path, "b", shared)
    first = Agent.create(first_settings, detector=ScriptedDetector([]))
    try:
        refusal = (rf"^models\.dir: {shared} is used by another running edge agent \(truck "
                   rf"{first_settings.truck_id}, pid \d+, holding {tmp_path}/models\.lock\);.*give each its own "
                   r"models\.dir$")
        with pytest.raises(ConfigError, match=refusal):
            Agent.create(second_settings, detector=ScriptedDetector([]))
        other = Agent.create(truck(tmp_path, "c", tmp_path / "models-c"), detector=ScriptedDetector([]))
        other.close()  # its own folder: no quarrel
    finally:
        first.close()
    second = Agent.create(second_settings, detector=ScriptedDetector([]))  # the first stopped: its turn
    second.close()


def test_agents_that_cannot_download_take_no_lock(tmp_path: Path) -> None:
    shared = tmp_path / "models"
    agents = [Agent.create(truck(tmp_path, name, shared, server=None), detector=ScriptedDetector([]))
              for name in ("a", "b")]
    for agent in agents:
        agent.close()
    assert not shared.exists() and not lock_file(shared).exists()


def test_another_process_holding_the_folder_is_named(tmp_path: Path) -> None:
    shared = tmp_path / "models"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from edge.config import load_settings; "
         "from edge.models_lock import lock_models_dir; "
         f"lock = lock_models_dir(load_settings(None, {{'truck_id': 'benne-12', 'source': 'x', 'models': "
         f"{{'server': '{SERVER}', 'dir': sys.argv[1]}}}}, environ={{}})); print('held', flush=True); "
         "sys.stdin.read()", str(shared)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=r"\(truck benne-12, pid \d+, holding "):
            lock_models_dir(truck(tmp_path, "a", shared))
    finally:
        holder.communicate("", timeout=30)
    lock = lock_models_dir(truck(tmp_path, "b", shared))  # the process ended: the kernel let its lock go
    assert lock is not None and lock_file(shared).read_text().startswith("truck test-")
    lock.close()
    assert not shared.exists()  # beside the folder, not one more file among the models
