"""``trivue models rollback`` acts on the latest rollout only, and only when there is a model to go back to."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from server.fleet.models import Assignment, Rollout
from server.ingest.models import Truck
from tests.fleet.conftest import Fleet, wait_until
from tests.fleet.models import SHIPPED, derived
from tests.fleet.test_registry import seed_trucks


def assigned(fleet: Fleet) -> dict[str, str]:
    with fleet.sessions() as session:
        return {a.truck_id: a.sha256 for a in session.scalars(select(Assignment))}


def states(fleet: Fleet) -> list[str]:
    with fleet.sessions() as session:
        return list(session.scalars(select(Rollout.state).order_by(Rollout.id)))


def test_a_second_rollback_does_not_reach_for_an_older_rollout(fleet: Fleet, tmp_path: Path) -> None:
    old = fleet.publish(SHIPPED)
    b, c = fleet.publish(derived(tmp_path, "2026.12.03-b")), fleet.publish(derived(tmp_path, "2026.12.03-c"))
    seed_trucks(fleet, old, "t1", "t2", "t3")
    for args in ((b, "--canary", "1"), (b, "--confirm"), (c, "--canary", "1")):  # the fleet on b, then c on t1
        code, _out, err = fleet.cli("models", "rollout", *args)
        assert code == 0, err
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": b, "t2": b, "t3": b}
    # Before: this rolled back the complete rollout of b, but only on t2 and t3 (t1's assignment came
    # from the rollback): the fleet ended up on two models, the rollback saying it was done.
    code, out, err = fleet.cli("models", "rollback")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "rollout 2 (trivue-waste 2026.12.03-c) was already rolled back on " in err
    assert assigned(fleet) == {"t1": b, "t2": b, "t3": b} and states(fleet) == ["complete", "rolled_back"]


def test_a_rollback_with_no_model_to_go_back_to_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    with fleet.sessions() as session:  # trucks that never said which model they run
        session.add_all([Truck(truck_id=t, status="unknown") for t in ("t1", "t2")])
        session.commit()
    new = fleet.publish(derived(tmp_path, "2026.12.03-n"))
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "2")
    assert code == 0, err
    # Before: "rolled back" (exit 0) and the rollout marked so, while both trucks kept the new model.
    code, out, err = fleet.cli("models", "rollback")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "nothing to roll back to: the model each of its trucks ran before is unknown (t1, t2 reported none)" in err
    assert assigned(fleet) == {"t1": new, "t2": new} and states(fleet) == ["canary"]


def test_a_rollback_does_not_send_a_truck_to_a_model_it_refused(fleet: Fleet, tmp_path: Path) -> None:
    """A canary refused a (halted) rollout's model and kept running its own; the next rollout's
    rollback must put that one back, the model the truck really ran. Before, the refused model was
    taken for the model it ran before: the rollback asked the truck for it again, the truck refused
    it again and kept the model being rolled back."""
    from datetime import UTC, datetime

    old = fleet.publish(SHIPPED)
    bad, fixed = fleet.publish(derived(tmp_path, "2026.12.03-bad")), fleet.publish(derived(tmp_path, "2026.12.03-ok"))
    seed_trucks(fleet, old, "t1", "t2")
    code, _out, err = fleet.cli("models", "rollout", bad, "--canary", "1")
    assert code == 0, err
    with fleet.sessions() as session:  # t1's heartbeat: it refused the model and still runs the old one
        truck = session.get(Truck, "t1")
        truck.stats = {**truck.stats, "model_update": {"sha256": bad, "state": "refused", "reason": "wrong hash: x",
                                                       "at": datetime.now(UTC).isoformat()}}
        session.commit()
    wait_until(lambda: states(fleet) == ["halted"], "the rollout to halt")
    code, _out, err = fleet.cli("models", "rollout", fixed, "--canary", "1")
    assert code == 0, err
    with fleet.sessions() as session:
        assert session.get(Assignment, "t1").previous_sha256 == old
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old}
    assert states(fleet) == ["halted", "rolled_back"]


def test_a_rollback_puts_back_what_the_rest_ran_when_they_followed(fleet: Fleet, tmp_path: Path) -> None:
    """The canary stage can last days; meanwhile an admin gives one truck of the rest its own model
    (PUT /api/trucks/ID/config). When the rest follow, that truck's model before the rollout's is the
    one it was given: the rollback puts that one back. Before, it got the model it ran when the
    rollout began, recorded then, and lost the one it was given by hand."""
    import httpx

    from tests.fleet.test_registry import bearer

    old = fleet.publish(SHIPPED)
    own, new = fleet.publish(derived(tmp_path, "2026.12.03-own")), fleet.publish(derived(tmp_path, "2026.12.03-new"))
    seed_trucks(fleet, old, "t1", "t2")
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    admin = bearer(fleet.token("admin"))
    response = httpx.put(f"{fleet.url}/api/trucks/t2/config", json={"model": own}, headers=admin)
    assert response.status_code == 200, response.text
    code, _out, err = fleet.cli("models", "rollout", new, "--confirm")
    assert code == 0, err
    assert assigned(fleet) == {"t1": new, "t2": new}
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old, "t2": own}


def test_a_rollback_does_not_leave_a_truck_on_the_model_of_a_rollout_that_never_completed(
        fleet: Fleet, tmp_path: Path) -> None:
    """Two rollouts one after the other: b's canary stage is superseded by c's, whose canaries are
    b's canary and another truck. Rolling c back must put back the fleet's model, what the trucks
    ran before either: before, t1 went back to b, a candidate never proved and given up, and stayed
    on it (the rollout of b superseded, nothing left to roll back)."""
    old = fleet.publish(SHIPPED)
    b, c = fleet.publish(derived(tmp_path, "2026.12.05-b")), fleet.publish(derived(tmp_path, "2026.12.05-c"))
    seed_trucks(fleet, old, "t1", "t2", "t3")
    for sha, canary in ((b, "1"), (c, "2")):
        code, _out, err = fleet.cli("models", "rollout", sha, "--canary", canary)
        assert code == 0, err
    assert assigned(fleet) == {"t1": c, "t2": c} and states(fleet) == ["superseded", "canary"]
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old, "t2": old}


def test_a_rollback_does_not_put_back_the_model_of_a_halted_rollout(fleet: Fleet, tmp_path: Path) -> None:
    """The canary ran b, the ingest refused its lifts, the rollout halted; the admin rolled c out
    instead of rolling b back. Rolling c back put t1 back on b, the model that had halted."""
    from datetime import UTC, datetime

    from server.ingest.models import DeadLetter

    old = fleet.publish(SHIPPED)
    b, c = fleet.publish(derived(tmp_path, "2026.12.05-hb")), fleet.publish(derived(tmp_path, "2026.12.05-hc"))
    seed_trucks(fleet, old, "t1", "t2")
    code, _out, err = fleet.cli("models", "rollout", b, "--canary", "1")
    assert code == 0, err
    with fleet.sessions() as session:  # t1 runs b, and the ingest refuses what it sends
        truck = session.get(Truck, "t1")
        truck.stats = {**truck.stats, "model_sha256": b, "model_update": {
            "sha256": b, "state": "installed", "at": datetime.now(UTC).isoformat()}}
        session.add(DeadLetter(received_at=datetime.now(UTC), topic="t/t1/lift", truck_id="t1", reason="invalid",
                               detail="x", payload=b"{}", payload_size=2))
        session.commit()
    wait_until(lambda: states(fleet) == ["halted"], "the rollout to halt")
    code, _out, err = fleet.cli("models", "rollout", c, "--canary", "2")
    assert code == 0, err
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    assert assigned(fleet) == {"t1": old, "t2": old}
