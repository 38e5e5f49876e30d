"""The labelling API's refusals carry a code and its values beside the English sentence, so that the
Annotation page words them in its reader's language (it showed "nothing to undo: ..." in English on
the French page, as the server words it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from server.ingest.models import Evidence
from tests.server.conftest import Server
from tests.server.test_labels import annotator, api, decide, photos  # noqa: F401  (fixtures)


def test_refusals_carry_a_code_and_its_values(api: Server, photos: list[str]) -> None:  # noqa: F811
    ann, bob, event = annotator(api, "ann"), annotator(api, "bob"), photos[0]
    fresh = decide(api, ann, event, action="undo")
    assert fresh.status_code == 422
    assert fresh.json() == {"detail": "nothing to undo: you took no decision on this photo",
                            "code": "nothing_to_undo", "params": {}}
    bad = decide(api, ann, event, action="add", **{"class": "unicorn"}, x1=0.1, y1=0.1, x2=0.2, y2=0.2)
    assert (bad.status_code, bad.json()["code"], bad.json()["params"]) == (422, "unknown_class", {"class": "unicorn"})
    empty = decide(api, ann, event, action="add", **{"class": "bag"}, x1=0.3, y1=0.1, x2=0.2, y2=0.2)
    assert empty.json()["code"] == "box_empty"
    assert decide(api, ann, event, action="delete", box_id=9).json()["params"] == {"box": 9}
    seen = api.client.get(f"/api/labels/photos/{event}", headers=ann).json()["version"]
    assert decide(api, bob, event, action="accept", box_id=1).status_code == 200
    changed = decide(api, ann, event, action="accept", box_id=2, version=seen)
    assert changed.status_code == 409 and changed.json()["code"] == "changed"
    params = changed.json()["params"]
    assert (params["who"], params["action"]) == ("token:bob", "accept")
    assert datetime.fromisoformat(params["at"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert decide(api, ann, event, action="accept", box_id=2).status_code == 200
    assert decide(api, bob, event, action="undo").json()["code"] == "undo_after_other"
    with api.sessions() as session, session.begin():  # past retention, the hourly purge not run yet
        session.execute(update(Evidence).where(Evidence.event_id == event)
                        .values(received_at=datetime.now(UTC) - timedelta(days=31)))
    for answer in (decide(api, ann, event, action="done"), api.client.get(f"/api/labels/photos/{event}", headers=ann)):
        assert answer.status_code == 410
        body = answer.json()
        assert body["code"] == "photo_expired" and body["params"]["days"] == api.settings.evidence_retention_days
        assert body["detail"].startswith(f"the photo of lift {event} expired on {body['params']['on']}")
    missing = decide(api, ann, "00000000-0000-4000-8000-000000000000", action="done")
    assert (missing.status_code, missing.json()["code"]) == (404, "no_photo")


def test_the_coded_refusals_are_in_the_openapi_document(api: Server) -> None:  # noqa: F811
    document = api.client.get("/openapi.json").json()
    responses = document["paths"]["/api/labels/photos/{event_id}/decisions"]["post"]["responses"]
    for status in ("409", "410"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/LabelRefusal"}
    assert {"detail", "code", "params"} <= set(document["components"]["schemas"]["LabelRefusal"]["properties"])
