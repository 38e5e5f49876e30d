"""A canary's lifts count for a rollout only when its model judged them, INT8 and FP32 of a version alike.

Lifts name their model by name and version (wire 1.1, ``ModelInfo``); the INT8 model of a version
carries the same name and version as its FP32 model. Rolling INT8 v2 out to a truck on FP32 v2,
the FP32 lifts it sent before the swap counted as lifts with the rollout's model, and the rest
followed a canary that had not yet judged a single lift with it. Since wire 1.2 a lift also names
the file that judged it (``model.sha256``), which counts exactly. Both databases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from server.fleet.models import Assignment
from server.ingest.aggregates import insert_lifts, lift_row
from server.ingest.models import Truck
from tests.fleet.conftest import Fleet, wait_until
from tests.fleet.models import SHIPPED, SHIPPED_INT8, SHIPPED_VERSION
from tests.fleet.test_registry import bearer, seed_trucks
from vision.schema import LiftEvent, ModelInfo, Stream


def store_lifts(fleet: Fleet, truck_id: str, started: list[datetime], first_sequence: int,
                sha: str | None = None) -> None:
    """Lifts as the ingest stores them (received now), named by the model's name and version only
    (wire 1.1), or also by the SHA-256 of the file that judged them (``sha``, wire 1.2)."""
    now = datetime.now(UTC)
    model = ModelInfo(name="trivue-waste", version=SHIPPED_VERSION, sha256=sha)
    rows = [lift_row(LiftEvent(truck_id=truck_id, sequence=first_sequence + i, stream=Stream.recyclables,
                               started_at=at, ended_at=at + timedelta(seconds=20), contaminated=False, score=0,
                               model=model, frames=10),
                     now, fleet.settings.zone, None) for i, at in enumerate(started)]
    with fleet.sessions() as session:
        assert len(insert_lifts(session, rows)) == len(rows)
        session.commit()


def heartbeat(fleet: Fleet, truck_id: str, running: str, update: dict[str, Any] | None) -> None:
    with fleet.sessions() as session:
        truck = session.get(Truck, truck_id)
        truck.stats = {**truck.stats, "model_sha256": running, "model_update": update}
        session.commit()


def rollout_listed(fleet: Fleet, admin: dict[str, str]) -> dict[str, Any]:
    return httpx.get(f"{fleet.url}/api/rollouts", headers=admin).json()["rollouts"][0]


def test_fp32_lifts_before_the_swap_do_not_count_for_the_int8_rollout(
        fleet: Fleet, rollout_rounds: Callable[[int], None]) -> None:
    fp32, int8 = fleet.publish(SHIPPED), fleet.publish(SHIPPED_INT8)  # one version, two files
    seed_trucks(fleet, fp32, "t1", "t2")
    admin = bearer(fleet.token("admin"))
    started = httpx.post(f"{fleet.url}/api/models/{int8}/rollout", json={"canary": 1, "canary_lifts": 2},
                         headers=admin)
    assert started.status_code == 200 and started.json()["canary"] == ["t1"], started.text
    # The canary goes on with FP32 while it downloads and checks the INT8 model: same name and version.
    now = datetime.now(UTC)
    store_lifts(fleet, "t1", [now, now + timedelta(seconds=30), now + timedelta(seconds=60)], 1)
    heartbeat(fleet, "t1", fp32, {"sha256": int8, "state": "ready", "at": (now + timedelta(seconds=70)).isoformat()})
    rollout_rounds(5)
    listed = rollout_listed(fleet, admin)
    assert (listed["state"], listed["lifts"]) == ("canary", {"t1": 0}), listed
    with fleet.sessions() as session:
        assert session.scalar(select(Assignment.sha256).where(Assignment.truck_id == "t2")) is None
    # The swap, then two lifts judged by the INT8 model: those count, and the rest follow.
    swapped = now + timedelta(seconds=80)
    heartbeat(fleet, "t1", int8, {"sha256": int8, "state": "installed", "at": swapped.isoformat()})
    store_lifts(fleet, "t1", [swapped + timedelta(seconds=10), swapped + timedelta(seconds=40)], 4)
    wait_until(lambda: rollout_listed(fleet, admin)["state"] == "complete", "the rollout to be promoted", 10)
    assert rollout_listed(fleet, admin)["lifts"] == {"t1": 2}
    # A canary that no longer runs the rollout's file (its INT8 self-check fell back to FP32 at a
    # reboot, say) sends lifts that count for nothing either.
    heartbeat(fleet, "t1", fp32, {"sha256": int8, "state": "installed", "at": swapped.isoformat()})
    assert rollout_listed(fleet, admin)["lifts"] == {"t1": 0}


def test_lifts_of_a_model_alone_in_its_version_count_from_the_rollout(fleet: Fleet, tmp_path: Any) -> None:
    """No other file of its version: the name and version tell its lifts apart, the first lift with
    the model (begun a moment before the truck stamped the swap) included."""
    from tests.fleet.models import derived

    old = fleet.publish(SHIPPED)
    new_path = derived(tmp_path, "2026.12.03-alone")
    new = fleet.publish(new_path)
    seed_trucks(fleet, old, "t1", "t2")
    admin = bearer(fleet.token("admin"))
    started = httpx.post(f"{fleet.url}/api/models/{new}/rollout", json={"canary": 1, "canary_lifts": 3},
                         headers=admin)
    assert started.status_code == 200, started.text
    now = datetime.now(UTC)
    rows = [lift_row(LiftEvent(truck_id="t1", sequence=i, stream=Stream.recyclables, started_at=now,
                               ended_at=now, contaminated=False, score=0, frames=1,
                               model=ModelInfo(name="trivue-waste", version=version)), now, fleet.settings.zone, None)
            for i, version in enumerate([SHIPPED_VERSION, "2026.12.03-alone", "2026.12.03-alone"])]
    with fleet.sessions() as session:
        insert_lifts(session, rows)
        session.commit()
    assert rollout_listed(fleet, admin)["lifts"] == {"t1": 2}


def test_lifts_naming_their_file_count_by_it_whatever_the_swap_time_says(
        fleet: Fleet, rollout_rounds: Callable[[int], None]) -> None:
    """Wire 1.2 lifts count by the file they name, not by the swap the heartbeat reports: FP32 lifts
    after a stale "installed" (the truck rebooted and its self-check fell back to FP32) count for
    nothing, and the first INT8 lift, begun a moment before the truck stamped the swap, counts."""
    fp32, int8 = fleet.publish(SHIPPED), fleet.publish(SHIPPED_INT8)
    seed_trucks(fleet, fp32, "t1", "t2")
    admin = bearer(fleet.token("admin"))
    started = httpx.post(f"{fleet.url}/api/models/{int8}/rollout", json={"canary": 1, "canary_lifts": 2},
                         headers=admin)
    assert started.status_code == 200 and started.json()["canary"] == ["t1"], started.text
    swapped = datetime.now(UTC) + timedelta(seconds=30)
    heartbeat(fleet, "t1", int8, {"sha256": int8, "state": "installed", "at": swapped.isoformat()})
    # After the swap by the heartbeat's clock, judged by FP32: the swap time alone counted both.
    store_lifts(fleet, "t1", [swapped + timedelta(seconds=10), swapped + timedelta(seconds=40)], 1, sha=fp32)
    rollout_rounds(5)
    listed = rollout_listed(fleet, admin)
    assert (listed["state"], listed["lifts"]) == ("canary", {"t1": 0}), listed
    # Judged by INT8, the first begun before the swap was stamped: the swap time alone counted one.
    store_lifts(fleet, "t1", [swapped - timedelta(seconds=2), swapped + timedelta(seconds=70)], 3, sha=int8)
    wait_until(lambda: rollout_listed(fleet, admin)["state"] == "complete", "the rollout to be promoted", 10)
    assert rollout_listed(fleet, admin)["lifts"] == {"t1": 2}
