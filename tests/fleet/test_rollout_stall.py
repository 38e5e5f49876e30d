"""Canaries that are offline or never report: said when the rollout starts, and the rollout flagged
stalled in ``GET /api/rollouts`` and ``trivue models list`` once they stay silent."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import select

from server.audit import AuditEntry
from server.fleet.models import Rollout
from server.ingest.models import Truck
from tests.fleet.test_config_publish import TRUCKS, Api


def trivue(api: Api, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``trivue ARGS`` on the app's database: (exit code, stdout, stderr)."""
    from trivue.cli import main

    config = tmp_path / "cli.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(api.settings.data_dir),
                "known_trucks": TRUCKS,
                "database_url": api.settings.database_url,
                "ingest_enabled": False,
            }
        )
    )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--config", str(config)])
    return code, out.getvalue(), err.getvalue()


def online(api: Api, truck_id: str, seen: datetime) -> None:
    with api.sessions() as session:
        session.merge(Truck(truck_id=truck_id, status="online", status_at=seen, last_seen_at=seen))
        session.commit()


def test_start_prefers_online_trucks_and_says_when_it_picks_offline_ones(api: Api, tmp_path: Path) -> None:
    """Two canaries asked, one truck online (benne-c): before, benne-a (known, never seen) became a
    canary without a word in the answer, the CLI or the audit, and the rollout waited on it."""
    online(api, "benne-c", datetime.now(UTC))
    answer = api.client.post(f"/api/models/{api.models[1]}/rollout", json={"canary": 2}, headers=api.admin)
    assert answer.status_code == 200, answer.text
    assert answer.json()["canary"] == ["benne-c", "benne-a"]  # the online truck first
    assert answer.json()["offline_canaries"] == ["benne-a"]
    with api.sessions() as session:
        said = session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "model.rollout"))
    assert "offline canaries ['benne-a']: too few trucks online" in said, said

    code, _out, err = trivue(api, tmp_path, "models", "rollout", api.models[0], "--canary", "1")
    assert code == 0, err  # one canary: the online truck, nothing to say
    assert "offline" not in err, err
    code, _out, err = trivue(api, tmp_path, "models", "rollout", api.models[0], "--canary", "3")
    assert code == 0, err
    assert "warning: too few trucks online: canaries ['benne-a', 'benne-b'] are offline" in err, err


def test_a_rollout_whose_canaries_stay_silent_is_flagged_stalled(api: Api, tmp_path: Path) -> None:
    """Before, a canary that never reported left the rollout at the canary stage for good, and the
    API, the CLI and the page showed it as any rollout waiting for lifts."""
    now = datetime.now(UTC)
    online(api, "benne-a", now)
    online(api, "benne-b", now)
    answer = api.client.post(f"/api/models/{api.models[1]}/rollout", json={"canary": 2}, headers=api.admin)
    assert answer.status_code == 200 and answer.json()["stalled"] is False, answer.text
    assert answer.json()["offline_canaries"] == []

    # A day and a half later: benne-b has been heard from an hour ago, benne-a not since the start.
    ago = timedelta(hours=36)
    with api.sessions() as session:
        rollout = session.scalar(select(Rollout))
        rollout.created_at -= ago
        session.get(Truck, "benne-a").last_seen_at = now - ago
        session.get(Truck, "benne-b").last_seen_at = now - timedelta(hours=1)
        session.commit()
    listed = api.client.get("/api/rollouts", headers=api.admin).json()["rollouts"][0]
    assert (listed["state"], listed["stalled"], listed["stalled_canaries"]) == ("canary", True, ["benne-a"])
    assert listed["offline_canaries"] == ["benne-a", "benne-b"] and listed["stall_after_s"] == 86400

    code, out, err = trivue(api, tmp_path, "models", "list")
    assert code == 0, err
    assert "STALLED: canaries ['benne-a'] not heard from for 24 h" in out, out
    code, out, err = trivue(api, tmp_path, "models", "list", "--json")
    assert json.loads(out)["rollouts"][0]["stalled_canaries"] == ["benne-a"]

    # Confirmed, the rollout waits on nobody: no longer stalled.
    assert api.client.post(f"/api/models/{api.models[1]}/confirm", headers=api.admin).status_code == 200
    listed = api.client.get("/api/rollouts", headers=api.admin).json()["rollouts"][0]
    assert (listed["state"], listed["stalled"], listed["offline_canaries"]) == ("complete", False, [])


def test_the_stall_delay_is_a_strict_setting(tmp_path: Path) -> None:
    from server.config import ConfigError, load_settings

    assert load_settings(env={}, data_dir=tmp_path).rollout_stall_after_s == 86400
    assert load_settings(env={"TRIVUE_ROLLOUT_STALL_AFTER_S": "7200"}, data_dir=tmp_path).rollout_stall_after_s == 7200
    for bad in ("0", "-1", "nan", "soon"):
        try:
            load_settings(env={"TRIVUE_ROLLOUT_STALL_AFTER_S": bad}, data_dir=tmp_path)
        except ConfigError as error:
            assert "rollout_stall_after_s" in str(error)
        else:
            raise AssertionError(f"rollout_stall_after_s {bad!r} accepted")
