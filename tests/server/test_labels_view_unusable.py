"""Photos of lifts whose camera view was unusable (wire 1.4: dark, over-exposed, covered, blurred,
frozen) are no labelling material: a black or smeared frame teaches the model nothing, and an
annotator's time goes to the photos that do. They stay out of the annotators' queue and its count,
also when a manager overruled such a lift (which otherwise puts its photo first)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server.db import utcnow
from server.ingest.overrule import overrule
from tests.server.conftest import Server
from tests.server.photos import BOTTLE, photo_event, seed_photos
from vision.schema import EvidenceReason, ViewProblem


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def test_photos_of_lifts_not_judged_stay_out_of_the_labelling_queue(api: Server) -> None:
    seen = [photo_event(11), photo_event(12, reason="uncertain", boxes=[BOTTLE])]
    unseen = [(event.model_copy(update={"view_unusable": problem}), data) for (event, data), problem in
              zip([photo_event(13), photo_event(14, reason="sample", boxes=[BOTTLE]), photo_event(15)],
                  [ViewProblem.flat, ViewProblem.blurred, ViewProblem.dark], strict=True)]
    seed_photos(api.settings, api.sessions, [*seen, *unseen])
    with api.sessions() as session, session.begin():  # an overruled lift goes first, but not this one
        lens = overrule(session, str(unseen[2][0].event_id), "user:gestionnaire", "sac sur l'objectif", utcnow())
        assert lens.changed
    who = api.token("annotator")
    queue = api.client.get("/api/labels/queue", headers=who).json()
    assert {i["event_id"] for i in queue["items"]} == {str(event.event_id) for event, _ in seen}
    assert (queue["total"], queue["done"]) == (2, 0)
    for params in ({"reason": "sample"}, {"class": "bottle"}, {"status": "todo"}):
        got = api.client.get("/api/labels/queue", params=params, headers=who).json()
        assert not {i["event_id"] for i in got["items"]} & {str(event.event_id) for event, _ in unseen}, params


def test_a_photo_of_an_unusable_view_is_refused_by_id_too(api: Server) -> None:
    """Opened or decided on by its id (a link, a script, an import): refused with a code the page words,
    like a 1.0 truck's photo, whatever its reason (``view`` included, wire 1.4)."""
    event, data = photo_event(21, reason="sample", boxes=[])
    lens = event.model_copy(update={"view_unusable": ViewProblem.flat,
                                    "evidence": event.evidence.model_copy(update={"reason": EvidenceReason.view})})
    seed_photos(api.settings, api.sessions, [(lens, data)])
    who = api.token("annotator")
    for answer in (api.client.get(f"/api/labels/photos/{lens.event_id}", headers=who),
                   api.client.get(f"/api/labels/photos/{lens.event_id}/photo.jpg", headers=who),
                   api.client.post(f"/api/labels/photos/{lens.event_id}/decisions", json={"action": "done"},
                                   headers=who)):
        assert answer.status_code == 422 and answer.json()["code"] == "view_unusable", answer.text
    assert "flat" in answer.json()["detail"]
