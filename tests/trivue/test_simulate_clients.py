"""Two simulations on one broker, each for its own server (its own ``topic_prefix``), never share an
MQTT client id: with the same id the broker hands one's session to the other and drops the first."""

from __future__ import annotations

from pathlib import Path

from trivue.sim.publisher import FleetLink
from trivue.sim.trucks import edge_settings
from vision.schema import Stream


def client_ids(link: FleetLink) -> list[str]:
    return [client._client_id.decode() for client in link.clients]


def test_events_mode_client_ids_differ_per_topic_prefix() -> None:
    ours = client_ids(FleetLink("mqtt://127.0.0.1:1883", "riviera/v1", ["sim-01", "sim-02"]))
    theirs = client_ids(FleetLink("mqtt://127.0.0.1:1883", "trivue/v1", ["sim-01", "sim-02"]))
    assert not set(ours) & set(theirs)
    assert ours == client_ids(FleetLink("mqtt://127.0.0.1:1883", "riviera/v1", ["sim-01", "sim-02"]))  # fixed
    assert all(len(cid) <= 23 + 41 and cid.endswith(("sim-01", "sim-02")) for cid in ours)


def test_full_mode_agents_client_ids_differ_per_topic_prefix(tmp_path: Path) -> None:
    ids = {edge_settings("sim-01", tmp_path, "mqtt://127.0.0.1:1883", prefix, Stream.recyclables).client_id
           for prefix in ("riviera/v1", "trivue/v1")}
    assert len(ids) == 2 and all(cid.endswith("sim-01") for cid in ids)
