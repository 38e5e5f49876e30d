"""An admin's confirmation (``trivue models rollout SHA --confirm``, ``POST /api/models/{sha}/confirm``)
between two rollout checks: what the server already knows against the model stops it.

The server's ``RolloutTask`` halts a rollout within ``rollout_check_s`` (10 s by default) of a
canary's refusal; an admin who confirms in that window, or a rollout the task already halted,
must not send the rest of the fleet a model a canary refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from server.fleet.models import Assignment, Rollout
from server.ingest.models import DeadLetter, Truck
from tests.fleet.conftest import Fleet
from tests.fleet.models import SHIPPED, derived
from tests.fleet.test_registry import audit_actions, bearer, seed_trucks

# The rollout task never runs during a test: the admin is quicker than the next check.
FLEET_SETTINGS: dict[str, Any] = {"rollout_check_s": 3600}


def assigned(fleet: Fleet) -> dict[str, str]:
    with fleet.sessions() as session:
        return {a.truck_id: a.sha256 for a in session.scalars(select(Assignment))}


def state(fleet: Fleet) -> str:
    with fleet.sessions() as session:
        return session.scalar(select(Rollout.state).order_by(Rollout.id.desc()).limit(1)) or ""


def refuse(fleet: Fleet, truck_id: str, sha: str, reason: str) -> None:
    """The truck's heartbeat as the ingest stores it once the truck refused ``sha``."""
    with fleet.sessions() as session:
        truck = session.get(Truck, truck_id)
        assert truck is not None
        truck.stats = {**truck.stats, "model_update": {"sha256": sha, "state": "refused", "reason": reason,
                                                       "at": datetime.now(UTC).isoformat()}}
        session.commit()


def test_a_confirmation_does_not_send_the_fleet_a_model_a_canary_refused(fleet: Fleet, tmp_path: Path) -> None:
    shipped = fleet.publish(SHIPPED)
    seed_trucks(fleet, shipped, "benne-a", "benne-b", "benne-c")
    new = fleet.publish(derived(tmp_path, "2026.12.05-r"))
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "2")
    assert code == 0, err
    refuse(fleet, "benne-b", new, "wrong hash: the server sent 12 bytes")
    # Before: confirmed (exit 0), benne-c asked to run the refused model, the rollout 'complete' (the
    # fleet's model, given to every truck that joins later).
    code, out, err = fleet.cli("models", "rollout", new, "--confirm")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "rollout 1 (trivue-waste 2026.12.05-r) not confirmed: canary benne-b refused the model: wrong hash" in err
    admin = bearer(fleet.token("admin"))
    response = httpx.post(f"{fleet.url}/api/models/{new}/confirm", headers=admin)
    assert response.status_code == 422, response.text
    assert "not confirmed: canary benne-b refused the model: wrong hash" in response.json()["detail"]
    assert assigned(fleet) == {"benne-a": new, "benne-b": new} and state(fleet) == "canary"
    assert "model.promote" not in audit_actions(fleet)


def test_a_confirmation_is_refused_after_the_ingest_refused_a_canarys_messages(fleet: Fleet, tmp_path: Path) -> None:
    shipped = fleet.publish(SHIPPED)
    seed_trucks(fleet, shipped, "benne-a", "benne-b")
    new = fleet.publish(derived(tmp_path, "2026.12.05-d"))
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    with fleet.sessions() as session:
        session.add(DeadLetter(received_at=datetime.now(UTC), topic="t/benne-a/lift", truck_id="benne-a",
                               reason="invalid", detail="x", payload=b"{}", payload_size=2))
        session.commit()
    code, _out, err = fleet.cli("models", "rollout", new, "--confirm")
    assert code == 2 and "not confirmed: ingest refused 1 message(s) from the canaries" in err, err
    assert assigned(fleet) == {"benne-a": new} and state(fleet) == "canary"


def test_confirming_a_halted_rollout_says_why_it_halted(fleet: Fleet, tmp_path: Path) -> None:
    from server.fleet.rollout import advance

    shipped = fleet.publish(SHIPPED)
    seed_trucks(fleet, shipped, "benne-a", "benne-b")
    new = fleet.publish(derived(tmp_path, "2026.12.05-h"))
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    refuse(fleet, "benne-a", new, "classes without rules: model class 'sock' has no rule")
    with fleet.sessions() as session:  # the rollout task's next check
        advance(session, fleet.settings)
        session.commit()
    assert state(fleet) == "halted"
    # Before: "no rollout of trivue-waste 2026.12.05-h is waiting at the canary stage", nothing on why.
    code, _out, err = fleet.cli("models", "rollout", new, "--confirm")
    assert code == 2 and err.count("\n") == 1, err
    assert ("rollout 1 (trivue-waste 2026.12.05-h) was halted: canary benne-a refused the model: classes without "
            "rules") in err, err
    assert assigned(fleet) == {"benne-a": new}
