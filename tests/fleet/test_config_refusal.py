"""A setting the truck refused, carried over by every later config change; ``reset``; the audit entry.

The app runs with its ingest off and a recorder as its broker (``tests.fleet.test_config_publish``);
the truck's heartbeat is written as the ingest stores it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from server.audit import AuditEntry
from server.ingest.models import Truck
from tests.fleet.test_config_publish import Api


def heartbeat(api: Api, truck_id: str, **said: Any) -> None:
    """The truck's last heartbeat, as ingest stores it (``Truck.stats``)."""
    now = datetime.now(UTC)
    with api.sessions() as session:
        truck = session.get(Truck, truck_id)
        truck.stats = {"truck_id": truck_id, "sent_at": now.isoformat(), "uptime_s": 60, **said}
        truck.last_seen_at = truck.stats_at = now
        session.commit()


def config_audit(api: Api, truck_id: str) -> list[str]:
    with api.sessions() as session:
        query = select(AuditEntry.detail).where(AuditEntry.action == "truck.config", AuditEntry.target == truck_id)
        return list(session.scalars(query.order_by(AuditEntry.id)))


def test_a_refused_setting_is_said_at_each_change_and_reset_removes_it(api: Api) -> None:
    """The truck refused a stream its rules lack. Before, each later change (a threshold) carried the
    stream again, was refused again, and the answer said nothing; no request could remove it (null
    means unchanged), only a valid stream pushed over it."""
    first = api.put("benne-a", {"stream": "glass", "conf": 0.5})
    assert first.status_code == 200 and "refused" not in first.json(), first.text
    refused = first.json()["config_version"]
    heartbeat(
        api, "benne-a", stream="recyclables", config_refused=f"{refused}: rules.yaml: no rules for stream 'glass'"
    )

    later = api.put("benne-a", {"conf": 0.4})
    assert later.status_code == 200, later.text
    assert later.json()["stream"] == "glass"  # still sent: the server cannot tell which value was refused
    assert later.json()["refused"] == {
        "config_version": refused,
        "reason": "rules.yaml: no rules for stream 'glass'",
        "carried": ["stream"],
    }

    back = api.put("benne-a", {"reset": ["stream"]})
    assert back.status_code == 200, back.text
    assert "stream" not in back.json() and back.json()["conf"] == 0.4
    stored, _published = api.stored("benne-a")
    assert "stream" not in stored and stored["conf"] == 0.4
    truck, sent, _model = api.broker.sent[-1]
    assert truck == "benne-a" and sent == stored  # the retained message the truck reads lacks it too
    assert "stream" not in back.json().get("refused", {}).get("carried", [])

    # The truck applies it: its last word is no refusal, nothing is said any more.
    heartbeat(api, "benne-a", stream="recyclables", config_version=back.json()["config_version"])
    assert "refused" not in api.put("benne-a", {"min_track_frames": 3}).json()


@pytest.mark.parametrize(
    "body",
    [
        {"stream": "glass", "reset": ["stream"]},
        {"reset": ["model"]},
        {"reset": ["config_version"]},
        {"reset": "stream"},
    ],
)
def test_a_reset_that_means_nothing_is_refused(api: Api, body: dict[str, Any]) -> None:
    answer = api.put("benne-a", body)
    assert answer.status_code == 422, answer.text
    assert api.stored("benne-a")[0] is None and api.broker.sent == []


def test_the_audit_says_what_changed(api: Api) -> None:
    """Before, the entry was the whole resulting config as Python text ({'config_version': ..., 'stream':
    'glass'}): what the change did had to be read by comparing it with the entry before."""
    for body in (
        {"stream": "glass"},
        {"conf": 0.4, "stream": "glass"},
        {"reset": ["stream"]},
        {"model": api.models[0]},
        {"conf": 0.4},
    ):
        assert api.put("benne-a", body).status_code == 200
    assert config_audit(api, "benne-a") == [
        'stream: null -> "glass"',
        "conf: null -> 0.4",
        'stream: "glass" -> null',
        f'model: null -> "trivue-waste 2027.01 ({api.models[0][:12]})"',
        "no change",
    ]
