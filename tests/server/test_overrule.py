"""A lift's judgement overruled by a manager (``POST/DELETE /api/lifts/{event_id}/overrule``): the lift
counts clean in a street's day, month and year figures exactly once, an undo puts it back exactly
once, the truck's judgement stays stored, the rebuild agrees, the audit trail records the acts, and
its photo comes first in the labelling queue. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.audit import AuditEntry
from server.ingest.aggregates import rebuild_aggregates
from server.ingest.models import Lift
from server.streets.models import Street
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.photos import BOTTLE, photo_event, seed_photos
from tests.server.test_aggregates_rebuild import snapshot
from tests.server.test_api import seed

STREET = 7
DAY = date(2025, 3, 10)
PERIODS = {"day": (DAY, DAY), "month": (date(2025, 3, 1), date(2025, 3, 31)),
           "year": (date(2025, 1, 1), date(2025, 12, 31))}


@dataclass(frozen=True)
class OnOneStreet:
    street_id: int = STREET
    segment_id: int = 1
    distance_m: float = 3.0
    address_id: int | None = None
    address_distance_m: float | None = None
    confidence: float = 0.9
    street_confidence: float = 0.9


class OneStreet:
    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> OnOneStreet:
        return OnOneStreet()


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def lifts(api: Server) -> dict[str, str]:
    """Lifts of one street: the disputed one (food and a battery), another contaminated one the same
    day, a clean one, and a contaminated one in January of the same year."""
    with api.sessions() as session:
        session.add(Street(id=STREET, name="Rue de la Contestation", commune="Rennes",
                           name_key="rue de la contestation", geometry='{"type":"MultiLineString","coordinates":[]}',
                           length_m=120.0))
        session.commit()
    events = {"disputed": lift_event(counts={"bottle": 1, "food": 2, "battery": 1}, at=at(DAY, 9), sequence=1),
              "other": lift_event(counts={"glass": 1}, at=at(DAY, 10), sequence=2),
              "clean": lift_event(counts={"bottle": 2}, at=at(DAY, 11), sequence=3),
              "january": lift_event(counts={"bag": 1}, at=at(date(2025, 1, 15), 9), sequence=4)}
    seed(api, list(events.values()), OneStreet())
    return {name: str(event.event_id) for name, event in events.items()}


def figures(api: Server, who: dict[str, str]) -> dict[str, Any]:
    """The street's figures as the API serves them for its day, its month and a whole year."""
    found = {}
    for name, (since, until) in PERIODS.items():
        period = {"since": since.isoformat(), "until": until.isoformat()}
        body = api.client.get(f"/api/streets/{STREET}", params=period, headers=who).json()
        listed = api.client.get("/api/streets", params=period, headers=who).json()["streets"]
        row = next(s for s in listed if s["street_id"] == STREET)  # the map's and ranking's row
        assert (row["lifts"], row["contaminated"]) == (body["lifts"], body["contaminated"])
        found[name] = {"lifts": body["lifts"], "contaminated": body["contaminated"], "alerts": row["alerts"],
                       "top_errors": row["top_errors"],
                       "errors": sorted((e["category"], e["severity"], e["lifts"], e["items"]) for e in body["errors"])}
    return found


def test_an_overruled_lift_counts_clean_once_and_undo_puts_it_back_once(api: Server, lifts: dict[str, str]) -> None:
    manager = api.token("manager")
    url = f"/api/lifts/{lifts['disputed']}/overrule"
    start = figures(api, manager)
    assert start["day"]["lifts"] == 3 and start["day"]["contaminated"] == 2
    assert start["year"]["lifts"] == 4 and start["year"]["contaminated"] == 3
    assert {e[0] for e in start["day"]["errors"]} == {"biodechet", "dangereux", "verre"}, start["day"]["errors"]

    answer = api.client.post(url, json={"reason": "  Le foyer a montré une photo du bac : aucun déchet alimentaire  "},
                             headers=manager)
    assert answer.status_code == 200, answer.text
    lift = answer.json()
    # The judgement as the truck sent it stays; the overruling says who, when and why.
    assert lift["contaminated"] is True and lift["has_alert"] is True
    assert {e["class"] for e in lift["errors"]} == {"food", "battery"}
    assert lift["overruled"]["by"] == "token:test-manager"
    assert lift["overruled"]["reason"] == "Le foyer a montré une photo du bac : aucun déchet alimentaire"
    assert datetime.fromisoformat(lift["overruled"]["at"]) > datetime.now(UTC) - timedelta(minutes=1)

    after = figures(api, manager)
    disputed_categories = {e["category"] for e in lift["errors"]}
    for name in PERIODS:
        assert after[name]["lifts"] == start[name]["lifts"], name  # still a lift, now a clean one
        assert after[name]["contaminated"] == start[name]["contaminated"] - 1, name
        assert after[name]["alerts"] == start[name]["alerts"] - 1, name
        assert not {e[0] for e in after[name]["errors"]} & disputed_categories, (name, after[name]["errors"])
        kept = [e for e in start[name]["errors"] if e[0] not in disputed_categories]
        assert after[name]["errors"] == kept, name
        assert not {e["category"] for e in after[name]["top_errors"]} & disputed_categories, name
    with api.sessions() as session:
        stored = session.scalars(select(Lift).where(Lift.event_id == lifts["disputed"])).one()
        assert (stored.contaminated, stored.has_alert) == (True, True) and stored.score > 0  # as the truck sent it
        incremental = snapshot(session)
        rebuild_aggregates(session)  # the bulk rebuild counts it clean too
        assert snapshot(session) == incremental
        session.rollback()

    again = api.client.post(url, json={"reason": "une autre raison"}, headers=manager)
    assert again.status_code == 200 and again.json()["overruled"]["reason"] == lift["overruled"]["reason"]
    assert figures(api, manager) == after  # twice changes nothing

    undone = api.client.delete(url, headers=manager)
    assert undone.status_code == 200 and undone.json()["overruled"] is None
    assert figures(api, manager) == start
    assert api.client.delete(url, headers=manager).status_code == 200
    assert figures(api, manager) == start  # a second undo changes nothing

    detail = api.client.get(f"/api/lifts/{lifts['disputed']}", headers=manager).json()
    assert detail["overruled"] is None and detail["contaminated"] is True
    with api.sessions() as session:
        trail = session.scalars(select(AuditEntry).where(AuditEntry.action.like("lift.overrule%"))
                                .order_by(AuditEntry.id)).all()
    assert [(e.action, e.target) for e in trail] == [("lift.overrule", lifts["disputed"]),
                                                     ("lift.overrule_undo", lifts["disputed"])]
    assert trail[0].detail == f"street={STREET} day={DAY.isoformat()} error_items=3"
    assert all("foyer" not in (e.detail or "") for e in trail)  # counts and ids, never the free text


def test_refusals(api: Server, lifts: dict[str, str]) -> None:
    manager, viewer = api.token("manager"), api.token("viewer")
    url = f"/api/lifts/{lifts['disputed']}/overrule"
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 301}, {"reason": "ok", "extra": 1}):
        assert api.client.post(url, json=body, headers=manager).status_code == 422, body
    assert api.client.post(url, json={"reason": "faux"}, headers=viewer).status_code == 403
    unknown = "/api/lifts/00000000-0000-4000-8000-000000000000/overrule"
    assert api.client.post(unknown, json={"reason": "faux"}, headers=manager).status_code == 404
    assert api.client.delete(unknown, headers=manager).status_code == 404
    with api.sessions() as session:
        assert session.scalar(select(Lift.overruled_at).where(Lift.event_id == lifts["disputed"])) is None


def test_an_overruled_lifts_photo_comes_first_in_the_labelling_queue_with_its_reason(api: Server) -> None:
    now = datetime.now(UTC)
    batch = [photo_event(1, at=now - timedelta(hours=3)), photo_event(2, reason="sample", boxes=[BOTTLE],
                                                                      at=now - timedelta(hours=2)),
             photo_event(3, at=now - timedelta(hours=1))]
    seed_photos(api.settings, api.sessions, batch)
    first, second, third = (str(event.event_id) for event, _ in batch)
    manager, annotator = api.token("manager"), api.token("annotator")

    def order() -> list[str]:
        return [i["event_id"] for i in api.client.get("/api/labels/queue", headers=annotator).json()["items"]]

    assert order() == [first, second, third]  # collection order
    assert api.client.post(f"/api/lifts/{third}/overrule", json={"reason": "sac vide pris pour des déchets"},
                           headers=manager).status_code == 200
    assert order() == [third, first, second]
    photo = api.client.get(f"/api/labels/photos/{third}", headers=annotator).json()
    assert photo["overrule_reason"] == "sac vide pris pour des déchets"
    assert api.client.get(f"/api/labels/photos/{first}", headers=annotator).json()["overrule_reason"] is None
    assert api.client.delete(f"/api/lifts/{third}/overrule", headers=manager).status_code == 200
    assert order() == [first, second, third]


def test_an_overruled_lift_without_photo_queues_nothing(api: Server, lifts: dict[str, str]) -> None:
    manager, annotator = api.token("manager"), api.token("annotator")
    assert api.client.post(f"/api/lifts/{lifts['disputed']}/overrule", json={"reason": "pas de photo"},
                           headers=manager).status_code == 200
    assert api.client.get("/api/labels/queue", headers=annotator).json()["items"] == []
