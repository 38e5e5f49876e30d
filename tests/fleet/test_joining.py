"""Trucks that join the fleet while a rollout goes on: among the rest during the canary stage, the
fleet's model once it is complete. Through the real server and its rollout task, on both databases.

Before, a rollout's trucks were the trucks known when it began: a truck that first connected
during the canary stage never got the model, even after promotion, nor did one added later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from server.fleet.models import Assignment
from server.ingest.models import Truck
from tests.fleet.conftest import Fleet, wait_until
from tests.fleet.models import SHIPPED, derived
from tests.fleet.test_registry import bearer, seed_trucks


def assigned(fleet: Fleet) -> dict[str, str]:
    with fleet.sessions() as session:
        return {a.truck_id: a.sha256 for a in session.scalars(select(Assignment))}


def published_model(fleet: Fleet, truck_id: str) -> str | None:
    with fleet.sessions() as session:
        truck = session.get(Truck, truck_id)
        return ((truck.config or {}).get("model") or {}).get("sha256") if truck is not None else None


def latest_rollout(fleet: Fleet, admin: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{fleet.url}/api/rollouts", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()["rollouts"][0]


def test_a_truck_that_joins_during_the_canary_stage_follows_with_the_rest(fleet: Fleet, tmp_path: Path) -> None:
    old = fleet.publish(SHIPPED)
    new = fleet.publish(derived(tmp_path, "2026.12.03-join"))
    seed_trucks(fleet, old, "t1", "t2")
    admin = bearer(fleet.token("admin"))
    started = httpx.post(f"{fleet.url}/api/models/{new}/rollout", json={"canary": 1}, headers=admin)
    assert started.status_code == 200 and started.json()["rest"] == ["t2"], started.text
    seed_trucks(fleet, old, "t3")  # its first heartbeat, days into the canary stage
    wait_until(lambda: latest_rollout(fleet, admin)["rest"] == ["t2", "t3"], "the API to list t3 among the rest", 10)
    assert assigned(fleet) == {"t1": new}  # the rest, t3 too, wait for the canary
    confirmed = httpx.post(f"{fleet.url}/api/models/{new}/confirm", headers=admin)
    assert confirmed.status_code == 200 and confirmed.json()["rest"] == ["t2", "t3"], confirmed.text
    assert assigned(fleet) == {"t1": new, "t2": new, "t3": new}
    wait_until(lambda: published_model(fleet, "t3") == new, "t3's retained config to name the model", 10)
    # A rollback puts back the model t3 ran before, as for the others.
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old, "t2": old, "t3": old}


def test_a_truck_that_joins_during_the_canary_stage_follows_a_cli_confirmation(fleet: Fleet, tmp_path: Path) -> None:
    """``trivue models rollout SHA --confirm`` needs no running rollout task to include it."""
    old = fleet.publish(SHIPPED)
    new = fleet.publish(derived(tmp_path, "2026.12.03-join"))
    seed_trucks(fleet, old, "t1", "t2")
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    seed_trucks(fleet, old, "t3")
    code, _out, err = fleet.cli("models", "rollout", new, "--confirm")
    assert code == 0 and "['t2', 't3']" in err, err
    assert assigned(fleet) == {"t1": new, "t2": new, "t3": new}


def test_a_truck_that_joins_after_promotion_gets_the_fleets_model(fleet: Fleet, tmp_path: Path) -> None:
    old = fleet.publish(SHIPPED)
    new = fleet.publish(derived(tmp_path, "2026.12.03-join"))
    own = fleet.publish(derived(tmp_path, "2026.12.03-own"))
    seed_trucks(fleet, old, "t1", "t2")
    for args in ((new, "--canary", "1"), (new, "--confirm")):
        code, _out, err = fleet.cli("models", "rollout", *args)
        assert code == 0, err
    admin = bearer(fleet.token("admin"))
    seed_trucks(fleet, old, "t3")  # a truck added to the fleet after the rollout
    wait_until(lambda: published_model(fleet, "t3") == new, "the fleet's model in t3's retained config", 10)
    listed = latest_rollout(fleet, admin)
    assert listed["state"] == "complete" and listed["rest"] == ["t2", "t3"], listed
    # A truck given its own model by an admin keeps it: only trucks never asked for a model are enrolled.
    response = httpx.put(f"{fleet.url}/api/trucks/t4/config", json={"model": own}, headers=admin)
    assert response.status_code == 200, response.text
    seed_trucks(fleet, old, "t5")
    wait_until(lambda: published_model(fleet, "t5") == new, "the fleet's model in t5's retained config", 10)
    assert assigned(fleet) == {"t1": new, "t2": new, "t3": new, "t4": own, "t5": new}
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old, "t2": old, "t3": old, "t4": own, "t5": old}


def test_no_model_is_given_to_joining_trucks_when_no_rollout_completed(
        fleet: Fleet, tmp_path: Path, rollout_rounds: Callable[[int], None]) -> None:
    """A halted rollout is not the fleet's model: a truck that joins then keeps the model it has."""
    from datetime import UTC, datetime

    old = fleet.publish(SHIPPED)
    new = fleet.publish(derived(tmp_path, "2026.12.03-join"))
    seed_trucks(fleet, old, "t1", "t2")
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    with fleet.sessions() as session:
        truck = session.get(Truck, "t1")
        truck.stats = {**truck.stats, "model_update": {"sha256": new, "state": "refused", "reason": "wrong hash: x",
                                                       "at": datetime.now(UTC).isoformat()}}
        session.commit()
    admin = bearer(fleet.token("admin"))
    wait_until(lambda: latest_rollout(fleet, admin)["state"] == "halted", "the rollout to halt")
    seed_trucks(fleet, old, "t3")
    wait_until(lambda: "t3" in {t["truck_id"] for t in httpx.get(f"{fleet.url}/api/trucks", headers=admin).json()
                                ["trucks"]}, "t3 listed")
    rollout_rounds(5)
    assert assigned(fleet) == {"t1": new} and latest_rollout(fleet, admin)["rest"] == ["t2"]
