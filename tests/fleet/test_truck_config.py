"""A truck's retained configuration through the fleet's API and rollouts: what one change keeps of the others."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fleet.conftest import Fleet, wait_until
from tests.fleet.models import SHIPPED
from tests.fleet.test_registry import bearer, seed_trucks, session_truck


def test_a_config_change_keeps_the_settings_changed_before(fleet: Fleet) -> None:
    """The retained message is all a truck that reboots, or was off the road, receives: a PUT that
    changes one setting must not drop the others from it. Before, PUT {"model"} after PUT {"stream"}
    published a config without the stream: the truck came back collecting with its file's stream,
    its lifts judged against the wrong stream's rules."""
    shipped = fleet.publish(SHIPPED)
    seed_trucks(fleet, shipped, "benne-a")
    admin = bearer(fleet.token("admin"))
    for body in ({"stream": "glass"}, {"conf": 0.4}, {"model": shipped}, {"min_track_frames": 3}):
        response = httpx.put(f"{fleet.url}/api/trucks/benne-a/config", json=body, headers=admin)
        assert response.status_code == 200, response.text
    config = response.json()
    assert (config["stream"], config["conf"], config["min_track_frames"], config["model"]["sha256"]) == (
        "glass", 0.4, 3, shipped), config
    stored = session_truck(fleet, "benne-a").config
    assert {k: v for k, v in stored.items() if k != "model"} == {k: v for k, v in config.items() if k != "model"}
    # A later change of the same setting wins; the others stay.
    config = httpx.put(f"{fleet.url}/api/trucks/benne-a/config", json={"stream": "residual"}, headers=admin).json()
    assert (config["stream"], config["conf"], config["min_track_frames"]) == ("residual", 0.4, 3), config
    # A rollout's config (published by the rollout task) keeps them too.
    new = fleet.publish(SHIPPED.parent / "trivue-waste-int8.onnx")
    code, _out, err = fleet.cli("models", "rollout", new, "--canary", "1")
    assert code == 0, err
    published = wait_until(lambda: (c := session_truck(fleet, "benne-a").config or {}).get("model", {}).get(
        "sha256") == new and c, "the rollout's config")
    assert (published["stream"], published["conf"], published["min_track_frames"]) == ("residual", 0.4, 3)


def test_a_model_whose_version_no_truck_can_read_is_refused_at_publish(fleet: Fleet, tmp_path: Path) -> None:
    """The config names the model by name and version (``vision.schema.ModelRef``: 1 to 64 printable
    characters). Before, an empty or multi-line version was published and rolled out: every canary
    refused the whole retained config (its stream and thresholds with it) as unreadable, and the
    rollout neither halted nor advanced, since no truck refused the model itself."""
    from tests.fleet.test_registry import registry_state
    from vision.onnxmeta import with_metadata

    data = SHIPPED.read_bytes()
    before = registry_state(fleet)
    for version, words in (("", "version '' "), ("2027.01\nrc", "version '2027.01\\nrc' ")):
        path = tmp_path / "odd.onnx"
        path.write_bytes(with_metadata(data, {"trivue_version": version}))
        code, out, err = fleet.cli("models", "publish", str(path))
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert f"refused: {path}: {words}" in err and "trivue_version" in err, err
    assert registry_state(fleet) == before
