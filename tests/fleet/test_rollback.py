"""``trivue models rollback`` acts on the latest rollout only, and only when there is a model to go back to."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from server.fleet.models import Assignment, Rollout
from server.ingest.models import Truck
from tests.fleet.conftest import Fleet
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
