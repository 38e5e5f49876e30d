"""A photo whose SHA-256 differs from its lift's is refused whatever the order they arrive in.

Found by an evaluator: the check ran only when the lift had been committed in an earlier batch.
A wrong photo sent before its lift (the documented « before or after its lift »), or in the same
batch, was kept and shown as the lift's evidence, under a hash the lift never announced.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.server.conftest import Server, publish, wait_for
from tests.server.events import lift_event


@pytest.mark.parametrize("order", ["photo first", "one batch"])
def test_a_wrong_photo_is_refused_before_or_with_its_lift(server: Server, litter_val_images: list[Path],
                                                         order: str) -> None:
    announced, sent = (path.read_bytes() for path in litter_val_images[:2])
    event = lift_event("benne-01", counts={"battery": 1},
                       evidence={"sha256": hashlib.sha256(announced).hexdigest(), "width": 416, "height": 416})
    prefix = server.settings.topic_prefix
    photo = (f"{prefix}/benne-01/evidence/{event.event_id}", sent)
    lift = (f"{prefix}/benne-01/lift", event.to_json())
    headers = server.token("manager")
    if order == "photo first":
        publish(server.broker, [photo])
        time.sleep(0.5)  # its own batch, committed before the lift comes
        publish(server.broker, [lift])
    else:
        publish(server.broker, [lift, photo])
    wait_for(lambda: server.client.get(f"/api/lifts/{event.event_id}", headers=headers).status_code == 200,
             "the lift")
    letters = wait_for(lambda: (body := server.client.get("/api/dead-letters", headers=headers).json())
                       ["counts"].get("evidence_mismatch") and body, "the mismatched photo in the dead letters")
    item = next(i for i in letters["items"] if i["reason"] == "evidence_mismatch")
    assert item["topic"] == photo[0] and item["payload_size"] == len(sent)
    assert server.client.get(f"/api/lifts/{event.event_id}/evidence.jpg", headers=headers).status_code == 404
    assert server.client.get(f"/api/lifts/{event.event_id}", headers=headers).json()["evidence"] is None
    # the right photo sent afterwards is stored with its lift
    publish(server.broker, [(photo[0], announced)])
    response = wait_for(lambda: (r := server.client.get(f"/api/lifts/{event.event_id}/evidence.jpg",
                                                        headers=headers)).status_code == 200 and r, "the right photo")
    assert response.content == announced
