"""Rolling a model out to real trucks: ``trivue edge`` processes on real photos, the real server, Mosquitto.

The trucks (``tests/fleet/trucks.py``) are fed bursts one by one; the test reads the lifts the
server stored, each naming the model that judged it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from server.fleet.models import FleetModel, Rollout
from server.fleet.reasons import refusal_kind
from tests.fleet.conftest import Fleet, stats_of, wait_until
from tests.fleet.models import SHIPPED, SHIPPED_INT8, SHIPPED_VERSION, derived
from tests.fleet.test_registry import bearer, sha_of
from tests.fleet.trucks import Trucks

OLD = SHIPPED_VERSION


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the trucks are what these tests are about (tests/fleet/test_registry.py runs the
    server's side on PostgreSQL too)."""
    return f"sqlite:///{tmp_path / 'server.db'}"


def test_canary_rollout_then_the_rest_then_rollback(fleet: Fleet, trucks: Trucks, tmp_path: Path) -> None:
    shipped = sha_of(SHIPPED)
    new_model = derived(tmp_path / "release", "2026.12.03-field")
    new = fleet.publish(new_model)
    a, b = trucks.start("a"), trucks.start("b")  # "a" sorts first: the canary
    for truck in (a, b):
        truck.lift()  # a burst's last photo ends its lift: delivered at once
    assert a.lifts(1) == [OLD] and b.lifts(1) == [OLD]
    wait_until(lambda: all(stats_of(fleet, t.truck_id).get("model_sha256") == shipped for t in (a, b)),
               "both trucks to report the shipped model's sha256")

    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1", "--after-lifts", "2")
    assert code == 0, err
    with fleet.sessions() as session:
        assert session.scalar(select(Rollout.canary)) == [a.truck_id]
    a.update(new, "ready")  # downloaded, hash, classes and self-check passed; waits for the next lift
    assert b.versions() == [OLD] and not stats_of(fleet, b.truck_id).get("model_update")

    # The canary switches between lifts: the next lift starts with the new model (tests/edge covers
    # a lift in progress ending with the old one); the other truck keeps the old model until the
    # canary has proved it.
    for truck in (a, b):
        truck.lift()
    assert a.lifts(2) == [OLD, "2026.12.03-field"] and b.lifts(2) == [OLD, OLD]
    stats = a.update(new, "installed")
    assert stats["model"] == {"name": "trivue-waste", "version": "2026.12.03-field", "sha256": new}  # wire 1.2
    assert stats["model_sha256"] == new
    with fleet.sessions() as session:
        assert session.scalar(select(Rollout.state)) == "canary"  # one lift of two
    a.lift()
    assert a.lifts(3)[-2:] == ["2026.12.03-field"] * 2

    # Two clean lifts from the canary: the server sends the model to the rest.
    b.update(new, "ready")
    with fleet.sessions() as session:
        rollout = session.scalar(select(Rollout))
        assert rollout.state == "complete" and rollout.promoted_by == "system", rollout.reason
        assert (rollout.reason_code, rollout.reason_params["lifts"]) == ("canaries_clean", 2)
        assert rollout.reason_params["counts"][a.truck_id] >= 2
    b.lift()
    assert b.lifts(3) == [OLD, OLD, "2026.12.03-field"]
    assert b.update(new, "installed")["model_sha256"] == new
    assert sorted(p.name for p in a.models_dir.iterdir()) == [f"{new}.onnx"]  # downloaded once, kept

    # Rollback: the previous model (the one each truck started with) comes back between lifts.
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    for truck in (a, b):
        truck.update(shipped, "ready")
        truck.lift()
    assert a.lifts(4)[-1] == OLD and b.lifts(4)[-1] == OLD
    assert a.update(shipped, "installed")["model"]["version"] == OLD
    assert sorted(p.name for p in a.models_dir.iterdir()) == [f"{new}.onnx"]  # current + previous, no more
    actions = _audit(fleet)
    for action in ("model.publish", "model.rollout", "model.download", "model.promote", "model.rollback"):
        assert action in actions, action


def _audit(fleet: Fleet) -> list[str]:
    from server.audit import AuditEntry

    with fleet.sessions() as session:
        return list(session.scalars(select(AuditEntry.action)))


def test_bad_models_are_refused_by_the_truck_which_keeps_its_model(fleet: Fleet, trucks: Trucks,
                                                                   tmp_path: Path) -> None:
    shipped = fleet.publish(SHIPPED)
    truck = trucks.start("c", selfcheck={"max_disagreement": 0.0})  # INT8 never agrees exactly with FP32
    truck.lift()
    assert truck.lifts(1) == [OLD]
    admin = bearer(fleet.token("admin"))

    def ask(sha: str) -> None:
        response = httpx.put(f"{fleet.url}/api/trucks/{truck.truck_id}/config", json={"model": sha}, headers=admin)
        assert response.status_code == 200, response.text

    kinds = []

    def refused(sha: str) -> str:
        stats = truck.update(sha, "refused")
        assert stats["model_sha256"] == shipped and stats["model"]["version"] == OLD  # still the old model
        assert not truck.models_dir.exists() or list(truck.models_dir.iterdir()) == []  # nothing left behind
        kinds.append(refusal_kind(stats["model_update"]["reason"]))  # as a halted rollout's reason names it
        return stats["model_update"]["reason"]

    # Wrong hash: the file on the server is not the one published.
    wrong = fleet.publish(derived(tmp_path / "m", "2026.12.03-wrong"))
    stored = fleet.settings.data_dir / "models" / f"{wrong}.onnx"
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    ask(wrong)
    assert refused(wrong).startswith(f"wrong hash: the server sent {stored.stat().st_size} bytes with sha256 ")

    # A class without a rule in the truck's stream.
    code, unknown_class, err = fleet.cli("models", "publish", str(derived(tmp_path / "m", "2026.12.03-sock",
                                                                        rename={"bag": "sock"})))
    assert code == 0 and "warning: trucks on recyclables with the server's sorting rules (" in err \
        and "rules_fr.yaml) will refuse it: model class 'sock' has no rule" in err, err
    unknown_class = unknown_class.strip()
    ask(unknown_class)
    assert "classes without rules" in (reason := refused(unknown_class)) and "'sock'" in reason

    # A corrupt file whose hash is right (registered by hand, or corrupted before publishing).
    corrupt = b"\x08\x07" + os.urandom(4096)
    import hashlib

    corrupt_sha = hashlib.sha256(corrupt).hexdigest()
    (fleet.settings.data_dir / "models" / f"{corrupt_sha}.onnx").write_bytes(corrupt)
    with fleet.sessions() as session:
        session.add(FleetModel(sha256=corrupt_sha, name="trivue-waste", version="corrupt", quantised=False,
                               names=["bag"], imgsz=[320, 320], metrics={}, card=None, size_bytes=len(corrupt),
                               published_at=datetime.now(UTC), published_by="test"))
        session.commit()
    ask(corrupt_sha)
    assert refused(corrupt_sha).startswith("not a usable model:")

    # A failed self-check: the INT8 model against its FP32 reference, at a threshold it cannot meet.
    int8 = fleet.publish(SHIPPED_INT8)
    ask(int8)
    assert refused(int8).startswith("self-check failed: disagrees with its FP32 model by 0.")

    # A bad token: the server refuses the download.
    truck.token_file.write_text("trv_" + "x" * 43)
    good = fleet.publish(derived(tmp_path / "m", "2026.12.03-good"))
    ask(good)
    assert "HTTP 401" in refused(good)

    # The server knows each of the truck's refusals by its first words (server.fleet.reasons).
    assert kinds == ["hash", "rules", "unusable", "selfcheck", "download"]

    # An unknown sha never reaches the truck.
    response = httpx.put(f"{fleet.url}/api/trucks/{truck.truck_id}/config", json={"model": "0" * 64}, headers=admin)
    assert response.status_code == 404 and "no published model with sha256 0000" in response.json()["detail"]

    # Through all this the truck kept judging lifts with its model.
    truck.lift()
    assert truck.lifts(2) == [OLD, OLD]
