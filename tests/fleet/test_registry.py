"""Publishing models, truck tokens, downloads, and the rollout's bookkeeping, through the real server."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from server.audit import AuditEntry
from server.fleet.models import Assignment, FleetModel, Rollout
from server.ingest.models import Truck
from tests.fleet.conftest import Fleet, wait_until
from tests.fleet.models import CARD, SHIPPED, SHIPPED_INT8, SHIPPED_MAP50, SHIPPED_VERSION, derived
from tests.server.edited_rules import COMPOSTABLE, edited_rules
from vision.onnxmeta import parse_model_file, read_metadata, with_metadata
from vision.rules import DEFAULT_RULES, SortingRules
from vision.schema import Stream


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_actions(fleet: Fleet) -> list[str]:
    with fleet.sessions() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def registry_state(fleet: Fleet) -> tuple[int, list[str]]:
    with fleet.sessions() as session:
        count = session.scalar(select(func.count()).select_from(FleetModel))
    folder = fleet.settings.data_dir / "models"
    return count or 0, sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_publish_records_hash_classes_size_metrics_and_card(fleet: Fleet) -> None:
    sha = fleet.publish(SHIPPED)
    assert sha == sha_of(SHIPPED)
    admin = bearer(fleet.token("admin"))
    listing = httpx.get(f"{fleet.url}/api/models", headers=admin).json()["models"]
    assert [(m["sha256"], m["name"], m["version"], m["quantised"]) for m in listing] == [
        (sha, "trivue-waste", SHIPPED_VERSION, False)]
    model = httpx.get(f"{fleet.url}/api/models/{sha[:12]}", headers=admin).json()
    assert model["names"][:3] == ["bag", "bottle", "can"] and len(model["names"]) == 10
    assert model["imgsz"] == [320, 320] and model["metrics"]["map50"] == pytest.approx(SHIPPED_MAP50)
    assert model["card"] == CARD.read_text()  # the card beside the file
    assert model["size_bytes"] == SHIPPED.stat().st_size
    assert (fleet.settings.data_dir / "models" / f"{sha}.onnx").read_bytes() == SHIPPED.read_bytes()
    # The INT8 model of the same version is its own entry, checked on the truck against the FP32 one.
    int8 = fleet.publish(SHIPPED_INT8)
    from server.fleet.registry import find, model_ref

    with fleet.sessions() as session:
        assert model_ref(session, find(session, int8))["reference"] == sha
    assert audit_actions(fleet).count("model.publish") == 2


def test_bad_models_are_refused_with_a_reason_and_change_nothing(fleet: Fleet, tmp_path: Path) -> None:
    fleet.publish(SHIPPED)
    before = registry_state(fleet)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 100)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(SHIPPED.read_bytes()[:1_000_000])
    no_names = tmp_path / "no-names.onnx"
    data = SHIPPED.read_bytes()
    no_names.write_bytes(with_metadata(data, {"names": "not a mapping", "trivue_version": "x"}))
    same_version = tmp_path / "same-version.onnx"  # other bytes under the version already published
    same_version.write_bytes(with_metadata(data, {"description": "retrained, same version"}))
    cases = {
        garbage: "garbage.onnx: not an ONNX model (corrupt or truncated",
        truncated: "truncated.onnx: not an ONNX model (corrupt or truncated: a field runs past the end of the file)",
        no_names: "metadata 'names' is not an {id: name} mapping",
        same_version: f"trivue-waste {SHIPPED_VERSION} is already published with another file",
        SHIPPED: f"is already published as trivue-waste {SHIPPED_VERSION}",
        tmp_path / "absent.onnx": "no such model file",
        tmp_path: "a folder, not a model file",
    }
    for path, words in cases.items():
        code, out, err = fleet.cli("models", "publish", str(path))
        assert code == 2 and out == "", (path, err)
        assert err.startswith("trivue models: error: ") and err.count("\n") == 1, err
        assert words in err, err
    assert registry_state(fleet) == before
    assert "model.publish" not in audit_actions(fleet)[1:]


def test_truck_tokens_fetch_models_and_their_own_config_only(fleet: Fleet) -> None:
    sha = fleet.publish(SHIPPED)
    truck = bearer(fleet.token("truck", "benne-07"))
    viewer = bearer(fleet.token("viewer"))
    # Only a model the truck was asked to run: before, any truck token fetched any published model.
    other = fleet.publish(derived(fleet.settings.data_dir.parent / "other", "2026.12.03-other"))
    refused = httpx.get(f"{fleet.url}/api/models/{sha}.onnx", headers=truck)
    assert refused.status_code == 403 and "truck benne-07 was not asked to run model" in refused.json()["detail"]
    # Nothing else: no statistics, no other truck's config, no rollout.
    for path in ("/api/trucks", "/api/streets", "/api/models", "/api/lifts", "/metrics", "/api/rollouts"):
        assert httpx.get(f"{fleet.url}{path}", headers=truck).status_code == 403, path
    assert httpx.get(f"{fleet.url}/api/trucks/benne-08/config", headers=truck).status_code == 403
    own = httpx.get(f"{fleet.url}/api/trucks/benne-07/config", headers=truck)
    assert own.status_code == 404 and "no config published" in own.json()["detail"]
    assert httpx.post(f"{fleet.url}/api/models/{sha}/rollout", json={"canary": 1}, headers=truck).status_code == 403
    # Once asked to run it (its config names it), the truck downloads it; still not the other one.
    admin = bearer(fleet.token("admin"))
    assert httpx.put(f"{fleet.url}/api/trucks/benne-07/config", json={"model": sha}, headers=admin).status_code == 200
    response = httpx.get(f"{fleet.url}/api/models/{sha}.onnx", headers=truck)
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == sha
    assert audit_actions(fleet)[-1] == "model.download"
    assert httpx.get(f"{fleet.url}/api/models/{other}.onnx", headers=truck).status_code == 403
    assert httpx.get(f"{fleet.url}/api/models/{other}.onnx", headers=admin).status_code == 200
    # Other roles cannot download; a bad token is nobody; an unknown sha is named.
    assert httpx.get(f"{fleet.url}/api/models/{sha}.onnx", headers=viewer).status_code == 403
    assert httpx.get(f"{fleet.url}/api/models/{sha}.onnx", headers=bearer("trv_" + "x" * 43)).status_code == 401
    unknown = httpx.get(f"{fleet.url}/api/models/{'0' * 64}.onnx", headers=truck)
    assert unknown.status_code == 404 and "no published model with sha256 0000" in unknown.json()["detail"]
    # A truck token needs its truck, and only truck tokens have one.
    for args, words in ((["--role", "truck"], "needs --truck-id"),
                        (["--role", "truck", "--truck-id", "../x"], "needs a valid --truck-id"),
                        (["--role", "viewer", "--truck-id", "benne-07"], "for truck tokens only")):
        code, out, err = fleet.cli("tokens", "create", *args)
        assert code == 2 and out == "" and words in err, err


def seed_trucks(fleet: Fleet, model_sha: str, *truck_ids: str) -> None:
    """Trucks as the ingest leaves them: online, their heartbeat (a valid one: /api/trucks checks it)
    naming the model they run."""
    now = datetime.now(UTC)
    with fleet.sessions() as session:
        for truck_id in truck_ids:
            session.add(Truck(truck_id=truck_id, status="online", status_at=now, last_seen_at=now, stats_at=now,
                              stats={"truck_id": truck_id, "sent_at": now.isoformat(), "uptime_s": 60,
                                     "model": {"name": "trivue-waste", "version": SHIPPED_VERSION},
                                     "model_sha256": model_sha}))
        session.commit()


def test_rollout_halts_when_a_canary_refuses_and_rolls_back(fleet: Fleet, tmp_path: Path) -> None:
    shipped = sha_of(SHIPPED)
    seed_trucks(fleet, shipped, "benne-a", "benne-b", "benne-c")
    new = fleet.publish(derived(tmp_path, "2026.12.03-t1"))
    for args, words in (([new, "--canary", "0"], "expected 1 to 3"), ([new, "--canary", "4"], "expected 1 to 3"),
                        (["f" * 64, "--canary", "1"], "no published model with sha256 ffff"),
                        (["xyz", "--canary", "1"], "is not a sha256"),
                        ([new, "--confirm"], "no rollout of trivue-waste 2026.12.03-t1 is waiting")):
        code, _out, err = fleet.cli("models", "rollout", *args)
        assert code == 2 and words in err, err
    code, _out, err = fleet.cli("models", "rollout", new[:10], "--canary", "2", "--after-lifts", "5")
    assert code == 0, err
    with fleet.sessions() as session:
        rollout = session.scalar(select(Rollout))
        assert (rollout.state, rollout.canary, rollout.rest, rollout.canary_lifts) == (
            "canary", ["benne-a", "benne-b"], ["benne-c"], 5)
        assert {a.truck_id: a.sha256 for a in session.scalars(select(Assignment))} == {
            "benne-a": new, "benne-b": new}
    # The server publishes the canaries' retained config within rollout_check_s.
    wait_until(lambda: all((t := session_truck(fleet, tid)) and (t.config or {}).get("model", {}).get("sha256") == new
                           for tid in ("benne-a", "benne-b")), "the canaries' config")
    assert session_truck(fleet, "benne-c").config is None
    # A canary refuses the model: the rollout halts, the rest never follow.
    with fleet.sessions() as session:
        truck = session.get(Truck, "benne-b")
        truck.stats = {**truck.stats, "model_update": {"sha256": new, "state": "refused", "reason": "wrong hash: x",
                                                       "at": datetime.now(UTC).isoformat()}}
        session.commit()
    halted = wait_until(lambda: (r := rollout_row(fleet)).state == "halted" and r, "the rollout to halt")
    assert halted.reason == "canary benne-b refused the model: wrong hash: x"
    admin = bearer(fleet.token("admin"))
    listed = httpx.get(f"{fleet.url}/api/rollouts", headers=admin).json()["rollouts"][0]
    assert (listed["reason"], listed["reason_code"], listed["reason_params"]) == (
        halted.reason, "canary_refused", {"truck": "benne-b", "detail": "wrong hash: x", "refusal": "hash"})
    # The truck's own refusal has the same kind, beside its heartbeat (which stays as the truck sent it).
    trucks = {t["truck_id"]: t for t in httpx.get(f"{fleet.url}/api/trucks", headers=admin).json()["trucks"]}
    assert trucks["benne-b"]["model_refusal"] == "hash"
    assert trucks["benne-b"]["stats"]["model_update"]["reason"] == "wrong hash: x"
    assert "refusal" not in trucks["benne-b"]["stats"]["model_update"] and trucks["benne-a"]["model_refusal"] is None
    assert session_truck(fleet, "benne-c").config is None
    # Rollback: the canaries get the model they ran before.
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 0, err
    wait_until(lambda: all((session_truck(fleet, t).config or {}).get("model", {}).get("sha256") == shipped
                           for t in ("benne-a", "benne-b")), "the previous model back in the canaries' config")
    assert rollout_row(fleet).state == "rolled_back"
    listed = httpx.get(f"{fleet.url}/api/rollouts", headers=admin).json()["rollouts"][0]
    assert (listed["reason_code"], listed["reason_params"]) == ("rolled_back", {"actor": "cli", "unknown": []})
    code, out, err = fleet.cli("models", "list")  # the CLI keeps the English sentence
    assert code == 0 and "rolled_back, canary ['benne-a', 'benne-b']" in out and "(rolled back by cli)" in out, err
    actions = audit_actions(fleet)
    for action in ("model.rollout", "truck.model", "model.halt", "model.rollback"):
        assert action in actions, action
    code, _out, err = fleet.cli("models", "rollback")
    assert code == 2 and "rollout 1 (trivue-waste 2026.12.03-t1) was already rolled back on " in err


def test_confirm_sends_the_rest_and_the_api_does_the_same(fleet: Fleet, tmp_path: Path) -> None:
    shipped = fleet.publish(SHIPPED)  # a per-truck change names a published model
    seed_trucks(fleet, shipped, "benne-a", "benne-b")
    new = fleet.publish(derived(tmp_path, "2026.12.03-t2"))
    admin = bearer(fleet.token("admin"))
    response = httpx.post(f"{fleet.url}/api/models/{new}/rollout", json={"canary": 1, "canary_lifts": 3},
                          headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["canary"] == ["benne-a"] and response.json()["lifts"] == {"benne-a": 0}
    confirmed = httpx.post(f"{fleet.url}/api/models/{new}/confirm", headers=admin)
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "complete"
    wait_until(lambda: (session_truck(fleet, "benne-b").config or {}).get("model", {}).get("sha256") == new,
               "the rest's config")
    listing = httpx.get(f"{fleet.url}/api/rollouts", headers=admin).json()["rollouts"]
    assert listing[0]["state"] == "complete" and listing[0]["promoted_by"].startswith("token:")
    assert listing[0]["reason_code"] == "confirmed" and listing[0]["reason_params"] == {
        "actor": listing[0]["promoted_by"]} and listing[0]["reason"] == f"confirmed by {listing[0]['promoted_by']}"
    # Per truck: PUT config with a model keeps the model whatever else changes later.
    put = httpx.put(f"{fleet.url}/api/trucks/benne-a/config", json={"model": shipped}, headers=admin)
    assert put.status_code == 200 and put.json()["model"]["sha256"] == shipped
    put = httpx.put(f"{fleet.url}/api/trucks/benne-a/config", json={"stream": "glass"}, headers=admin)
    assert put.json()["model"]["sha256"] == shipped and put.json()["stream"] == "glass"
    unknown = httpx.put(f"{fleet.url}/api/trucks/benne-a/config", json={"model": "ab" * 32}, headers=admin)
    assert unknown.status_code == 404 and "no published model" in unknown.json()["detail"]
    assert session_truck(fleet, "benne-a").config["model"]["sha256"] == shipped  # unchanged by the refusal
    truck = bearer(fleet.token("truck", "benne-a"))
    own = httpx.get(f"{fleet.url}/api/trucks/benne-a/config", headers=truck)
    assert own.status_code == 200 and own.json()["model"]["sha256"] == shipped


def session_truck(fleet: Fleet, truck_id: str) -> Truck:
    with fleet.sessions() as session:
        return session.get(Truck, truck_id)


def rollout_row(fleet: Fleet) -> Rollout:
    with fleet.sessions() as session:
        return session.scalar(select(Rollout).order_by(Rollout.id.desc()))


def test_derived_models_are_real_models_with_their_own_hash(tmp_path: Path) -> None:
    from vision.model import Detector

    path = derived(tmp_path, "2026.12.03-x", rename={"bag": "sock"})
    detector = Detector(path)
    assert detector.meta.version == "2026.12.03-x" and detector.names[0] == "sock"
    assert sha_of(path) != sha_of(SHIPPED)
    assert read_metadata(path.read_bytes())["trivue_name"] == "trivue-waste"


def test_a_model_changed_while_published_is_stored_under_the_hash_of_its_bytes(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training run still writing the file: it changes after publish started reading it. Whatever
    the registry stored must be the bytes its sha256 names, with the metadata of those bytes."""
    import server.fleet.registry as registry

    model = derived(tmp_path / "first", "0.9.1")
    newer = derived(tmp_path / "second", "0.9.2").read_bytes()
    read_card = registry._read_card

    def card_then_rewrite(card: Path | None) -> str | None:
        model.write_bytes(newer)  # the file changes while publish is at work
        return read_card(card)

    monkeypatch.setattr(registry, "_read_card", card_then_rewrite)
    sha = fleet.publish(model)
    stored = fleet.settings.data_dir / "models" / f"{sha}.onnx"
    assert sha_of(stored) == sha, "the stored file's bytes are not those its name and row say"
    with fleet.sessions() as session:
        row = session.get(FleetModel, sha)
        assert row is not None and row.size_bytes == stored.stat().st_size
        assert row.version == read_metadata(stored.read_bytes())["trivue_version"]
    assert not list(stored.parent.glob("*.part")), "no temporary copy left behind"


def test_a_model_whose_classes_do_not_match_its_head_is_refused_at_publish(fleet: Fleet, tmp_path: Path) -> None:
    """The shipped head has 4 + 10 channels: 9 class names cannot be its classes. Refused with one
    line by ``trivue models publish``, not later by the canary truck."""
    import ast

    data = SHIPPED.read_bytes()
    names = ast.literal_eval(read_metadata(data)["names"])
    nine = tmp_path / "nine-classes.onnx"
    nine.write_bytes(with_metadata(data, {"trivue_version": "9-classes",
                                          "names": repr({i: names[i] for i in range(9)})}))
    before = registry_state(fleet)
    code, out, err = fleet.cli("models", "publish", str(nine))
    assert code == 2 and out == "", err
    assert err.startswith("trivue models: error: refused: ") and err.count("\n") == 1, err
    assert f"{nine}: output shape (1, 14, 2100) is not a detection head for the 9 classes" in err, err
    assert "expected (1, 13, N)" in err, err
    assert registry_state(fleet) == before and "model.publish" not in audit_actions(fleet)


def test_the_publish_warning_follows_the_servers_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A deployment added a class to its rules (and no paper collection): a model that detects it is
    what its trucks expect, so publishing warns of nothing; the packaged rules would warn on every stream."""
    from server.fleet.registry import streams_without_rules
    from trivue.cli import main

    own = SortingRules.load(edited_rules(tmp_path / "regles", drop_streams=("paper",)))
    model = derived(tmp_path / "m", "2026.12.03-compost", rename={"bag": COMPOSTABLE})
    names = list(parse_model_file(model).names)
    assert set(streams_without_rules(names, SortingRules.load())) == {stream.value for stream in Stream}
    assert streams_without_rules(names, own) == {}
    # Only the streams of the file: a collectivité without a paper collection is not warned about it.
    assert set(streams_without_rules([*names, "sock"], own)) == {"recyclables", "glass", "residual", "biowaste"}
    for name in [n for n in os.environ if n.startswith("TRIVUE_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "server.yaml"
    for rules, warned in ((own.source, set()), (str(DEFAULT_RULES), {stream.value for stream in Stream})):
        config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "server"), "sorting_rules": rules}))
        published = derived(tmp_path / "m", f"2026.12.03-compost-{len(warned)}", rename={"bag": COMPOSTABLE})
        assert main(["models", "publish", str(published), "--config", str(config)]) == 0
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("warning: ")]
        assert {line.split()[3] for line in lines} == warned, err
        assert all(f"with the server's sorting rules ({rules}) will refuse it: " in line for line in lines)
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "server"), "sorting_rules": str(tmp_path / "no")}))
    assert main(["models", "publish", str(model), "--config", str(config)]) == 2
    assert f"sorting_rules: {tmp_path / 'no'}: rules file not found" in capsys.readouterr().err
