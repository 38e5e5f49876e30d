"""A lift whose camera view was unusable (wire 1.4) is not judged: it is no alert and no ambiguous lift.

Found in review (SQLite and PostgreSQL): such a lift counts in no street figure, yet the alerts page
(``/api/alerts`` and its stream) listed its battery like any judged lift, and the data-quality
page's « Levées à la rue incertaine », which says its lifts are counted in their likeliest street,
counted it too, beside a street page that leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift
from server.web.alert_feed import StreamCursor, Window
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.streets_fixture import import_rennes, points_on_streets
from vision.schema import LiftEvent, ViewProblem


@pytest.fixture
def stored(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def write(server: Server, events: list[LiftEvent]) -> None:
    """Store the events as ingest does (the street located from each fix), without the broker."""
    from server.streets.locator import Locator

    settings = server.settings
    with server.sessions() as session:
        locator = Locator.from_session(session)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: locator)
    now = datetime.now(UTC)
    with server.sessions() as session, session.begin():
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/{e.truck_id}/lift", e.to_json().encode(), now)
                              for e in events])


def unjudged(event: LiftEvent, problem: ViewProblem = ViewProblem.dark) -> LiftEvent:
    return event.model_copy(update={"view_unusable": problem})


def test_a_lift_not_judged_is_no_alert(stored: Server) -> None:
    now = datetime.now(UTC)
    dark = unjudged(lift_event("benne-01", counts={"battery": 1}, sequence=1, at=now - timedelta(minutes=2)))
    seen = lift_event("benne-01", counts={"gas_cylinder": 1}, sequence=2, at=now - timedelta(minutes=1))
    later_dark = unjudged(lift_event("benne-01", counts={"battery": 2}, sequence=3, at=now), ViewProblem.frozen)
    write(stored, [dark, seen, later_dark])
    with stored.sessions() as session:  # the truck's judgement is kept as it sent it
        assert session.scalars(select(Lift.has_alert).order_by(Lift.id)).all() == [True, True, True]
    page = stored.client.get("/api/alerts", headers=stored.token("manager")).json()
    assert [a["event_id"] for a in page["items"]] == [str(seen.event_id)]
    # What a stream sends from the page's cursor, or resumed from before every lift.
    with stored.sessions() as session:
        rows = StreamCursor(0).next_rows(session, Window(None, [], False))
    assert [r["event_id"] for r in rows] == [str(seen.event_id)]


def test_the_ambiguous_count_leaves_out_the_lifts_not_judged(stored: Server) -> None:
    import_rennes(stored.sessions)
    (point,) = points_on_streets(stored.sessions, 1)
    now = datetime.now(UTC)
    events = [lift_event("benne-02", counts={"bag": 1}, sequence=i, gps=(point.lat, point.lon),
                         heading=point.heading, at=now - timedelta(minutes=10 - i)) for i in range(3)]
    events[1] = unjudged(events[1], ViewProblem.blurred)
    write(stored, events)
    with stored.sessions() as session, session.begin():  # all three on the street, none sure of it
        session.execute(update(Lift).values(street_confidence=0.5))
        assert set(session.scalars(select(Lift.street_id))) == {point.street_id}
    viewer = stored.token("viewer")
    quality = stored.client.get("/api/data-quality", headers=viewer).json()
    # The street match itself counts every lift: matched, the histogram, the lifts not judged.
    assert (quality["lifts"], quality["matched"], quality["view_unusable"]) == (3, 3, 1)
    assert sum(b["lifts"] for b in quality["confidence_histogram"]) == 3
    # The ambiguous lifts are those counted in their likeliest street: the judged ones, as on its page.
    assert quality["ambiguous"] == 2
    assert [(s["street_id"], s["lifts"]) for s in quality["ambiguous_by_street"]] == [(point.street_id, 2)]
    street = stored.client.get(f"/api/streets/{point.street_id}", headers=viewer,
                               params={"since": quality["since"]}).json()
    assert street["lifts"] == 2
