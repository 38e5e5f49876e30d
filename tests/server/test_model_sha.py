"""Which model file judged each lift (wire 1.2, ``model.sha256``): stored by the ingest, shown with
the lift. A household disputing "contaminated" is answered with the exact file, INT8 or FP32, that
said so (both share a name and version). SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from server.ingest.models import Lift
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.test_api import api, seed  # noqa: F401  (the fixture)

INT8 = "1b" * 32


def test_the_model_file_of_each_lift_is_stored_and_shown(api: Server) -> None:  # noqa: F811
    named = lift_event(sequence=1, counts={"bottle": 1, "food": 2},
                       model={"name": "trivue-waste", "version": "2026.12.03", "sha256": INT8})
    older = lift_event(sequence=2, schema_version="1.1")  # a truck not yet upgraded: no file named
    seed(api, [named, older])
    with api.sessions() as session:
        stored = dict(session.execute(select(Lift.event_id, Lift.model_sha256)).all())
    assert stored == {str(named.event_id): INT8, str(older.event_id): None}
    manager = api.token("manager")
    detail = api.client.get(f"/api/lifts/{named.event_id}", headers=manager)
    assert detail.status_code == 200, detail.text
    assert detail.json()["model"] == {"name": "trivue-waste", "version": "2026.12.03", "sha256": INT8}
    assert api.client.get(f"/api/lifts/{older.event_id}", headers=manager).json()["model"]["sha256"] is None
