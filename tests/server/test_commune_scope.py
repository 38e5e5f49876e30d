"""A commune-scoped account (a mairie's agents) sees its communes' streets, lifts and photos only,
on SQLite and PostgreSQL: the street routes filter by the account's codes INSEE, a street, lift or
photo of another commune is a 404 like one that does not exist, a ``commune=`` naming another
commune is refused, and any route not opened to scoped accounts is a 403 saying why."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from server.audit import AuditEntry
from server.ingest.models import Evidence, Lift, StreetDay, StreetDayError
from server.ingest.rollups import rebuild_rollups
from server.streets.models import Street
from server.web.accounts import User
from server.web.auth import add_user, open_session, set_communes
from server.web.deps import SESSION_COOKIE
from tests.server.conftest import PASSWORD, Server

DAY = date(2026, 11, 2)
ORLEANS, SAINT_JEAN = "45234", "45284"
# id, name, commune, code INSEE (None: nothing said it, so no scoped account sees it)
STREETS = [(1, "Rue Jeanne d'Arc", "Orléans", ORLEANS), (2, "Rue de Bourgogne", "Orléans", ORLEANS),
           (3, "Rue de la Mairie", "Saint-Jean-de-Braye", SAINT_JEAN), (4, "Rue Sans Code", "Olivet", None)]
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def line(n: int) -> str:
    lon, lat = 1.90 + n / 100, 47.90
    return json.dumps({"type": "LineString", "coordinates": [[lon, lat], [lon + 0.002, lat + 0.001]]})


@dataclass
class Site:
    server: Server
    lifts: dict[int, str]  # street id -> event id of its lift (with a photo)

    def cookie(self, name: str) -> dict[str, str]:
        with self.server.sessions() as session:
            user = session.scalar(select(User).where(User.name == name))
            assert user is not None
            key, _ = open_session(session, user, 1)
            session.commit()
        return {"Cookie": f"{SESSION_COOKIE}={key}"}

    def get(self, path: str, who: dict[str, str], **params: Any) -> Any:
        return self.server.client.get(path, params=params, headers=who, follow_redirects=False)


@pytest.fixture
def site(make_settings: Callable[..., Any], run_server: Callable[..., Any]) -> Iterator[Site]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        evidence = server.client.app.state.ctx.evidence  # type: ignore[attr-defined]
        at = datetime(2026, 11, 2, 8, tzinfo=UTC)
        lifts = {sid: f"00000000-0000-4000-8000-{sid:012d}" for sid, *_ in STREETS}
        with server.sessions() as session:
            session.add_all([Street(id=sid, name=name, commune=commune, code_insee=code, name_key=name.lower(),
                                    geometry=line(sid), length_m=100.0) for sid, name, commune, code in STREETS])
            session.execute(insert(StreetDay), [
                {"street_id": sid, "day": DAY, "stream": "recyclables", "lifts": 4, "contaminated": 1, "alerts": 0,
                 "score": 1.0} for sid, *_ in STREETS])
            session.execute(insert(StreetDayError), [
                {"street_id": sid, "day": DAY, "stream": "recyclables", "category": "verre", "severity": "error",
                 "lifts": 1, "items": 1} for sid, *_ in STREETS])
            rebuild_rollups(session)
            for sid, event_id in lifts.items():
                session.add(Lift(event_id=event_id, truck_id="T1", sequence=sid, stream="recyclables", started_at=at,
                                 ended_at=at, day=DAY, received_at=at, street_id=sid, contaminated=True,
                                 has_alert=False, score=1.0, counts={}, errors=[], model_name="m", model_version="1",
                                 frames=1, evidence_sha256="0" * 64))
                relative = f"T1/{event_id}.jpg"
                evidence.path(relative).parent.mkdir(parents=True, exist_ok=True)
                evidence.path(relative).write_bytes(JPEG)
                session.add(Evidence(event_id=event_id, truck_id="T1", path=relative, sha256="0" * 64,
                                     size_bytes=len(JPEG), width=8, height=8, received_at=at))
            add_user(session, "mairie-orleans", PASSWORD, "manager", communes=[ORLEANS])
            add_user(session, "metropole", PASSWORD, "manager")
            session.commit()
        yield Site(server, lifts)


def street_ids(answer: Any) -> set[int]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = body.get("streets") or body.get("items") or [f["properties"] for f in body.get("features", [])]
    return {row["street_id"] for row in rows}


def test_the_street_routes_show_a_scoped_account_its_communes_only(site: Site) -> None:
    mairie, metropole = site.cookie("mairie-orleans"), site.cookie("metropole")
    # The intercommunal account sees every street: what the scoped one does not see exists.
    assert street_ids(site.get("/api/streets", metropole)) == {1, 2, 3, 4}
    assert street_ids(site.get("/api/streets", mairie)) == {1, 2}
    # The lifts matched to no street are the métropole's: not a commune's figure.
    assert site.get("/api/streets", mairie).json()["unmatched"] == {"lifts": 0, "contaminated": 0}
    assert street_ids(site.get("/api/streets.geojson", mairie)) == {1, 2}
    assert street_ids(site.get("/api/network.geojson", mairie)) == {1, 2}
    assert street_ids(site.get("/api/network.geojson", metropole)) == {1, 2, 3, 4}
    assert street_ids(site.get("/api/error-rates", mairie, category="verre")) == {1, 2}
    csv = site.get("/api/streets", mairie, format="csv")
    assert csv.status_code == 200 and "Orléans" in csv.text
    assert "Saint-Jean" not in csv.text and "Olivet" not in csv.text
    me = site.get("/api/me", mairie).json()
    assert me["communes"] == [ORLEANS] and site.get("/api/me", metropole).json()["communes"] is None
    assert site.get("/api/streets/1", mairie).json()["commune"] == "Orléans"
    assert site.get("/rues/1", mairie).status_code == 200


def test_another_communes_street_lift_or_photo_is_not_found(site: Site) -> None:
    mairie = site.cookie("mairie-orleans")
    for street in (3, 4):  # another commune's, and one whose commune no code says
        for path in (f"/api/streets/{street}", f"/rues/{street}", f"/api/lifts/{site.lifts[street]}",
                     f"/api/lifts/{site.lifts[street]}/evidence.jpg"):
            assert site.get(path, mairie).status_code == 404, path
    assert "Saint-Jean" not in site.get("/api/streets/3", mairie).text
    assert site.get("/api/streets/3", mairie).json() == site.get("/api/streets/99", mairie).json() | {
        "detail": "no street 3"}
    assert site.get(f"/api/lifts/{site.lifts[1]}", mairie).status_code == 200
    assert site.get(f"/api/lifts/{site.lifts[1]}/evidence.jpg", mairie).content == JPEG
    listed = site.get("/api/lifts", mairie).json()["items"]
    assert {item["event_id"] for item in listed} == {site.lifts[1], site.lifts[2]}  # Orléans' two streets
    assert site.get("/api/lifts", mairie, street_id=3).json()["items"] == []


def test_a_commune_filter_naming_another_commune_is_refused(site: Site) -> None:
    mairie = site.cookie("mairie-orleans")
    assert street_ids(site.get("/api/streets", mairie, commune="orleans")) == {1, 2}
    for path, params in (("/api/streets", {}), ("/api/streets.geojson", {}),
                         ("/api/error-rates", {"category": "verre"}), ("/api/streets/1", {})):
        answer = site.get(path, mairie, commune="Saint-Jean-de-Braye", **params)
        assert answer.status_code == 422, (path, answer.text)
        # Named from the account's communes only: the refusal lists no other commune.
        assert "Orléans" in answer.json()["detail"] and "Olivet" not in answer.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_other_route_is_refused_saying_why(site: Site) -> None:
    mairie = site.cookie("mairie-orleans")
    for path in ("/api/trucks", "/api/data-quality", "/api/dead-letters", "/api/alerts", "/metrics",
                 "/api/opendata/streets.csv", "/api/reminders/campaigns", "/flotte", "/qualite", "/rappels"):
        answer = site.get(path, mairie)
        assert answer.status_code == 403, path
        assert "communes" in answer.json()["detail"] and "45234" in answer.json()["detail"], path
    overrule = site.server.client.post(f"/api/lifts/{site.lifts[1]}/overrule", json={"reason": "erreur"},
                                       headers={**mairie, "Origin": "http://testserver"})
    assert overrule.status_code == 403


def test_a_scope_change_is_audited_and_applies_to_open_sessions(site: Site) -> None:
    mairie = site.cookie("mairie-orleans")
    with site.server.sessions() as session:
        set_communes(session, "mairie-orleans", [SAINT_JEAN, ORLEANS])
        session.commit()
    assert street_ids(site.get("/api/streets", mairie)) == {1, 2, 3}
    with site.server.sessions() as session:
        set_communes(session, "mairie-orleans", None)  # the whole métropole again
        session.commit()
        trail = [(e.action, e.target, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("user.%")).order_by(AuditEntry.id))]
    assert street_ids(site.get("/api/streets", mairie)) == {1, 2, 3, 4}
    assert site.get("/api/trucks", mairie).status_code == 200
    assert trail == [("user.add", "mairie-orleans", f"role=manager communes={ORLEANS}"),
                     ("user.add", "metropole", "role=manager"),
                     ("user.communes", "mairie-orleans", f"{ORLEANS} -> {ORLEANS},{SAINT_JEAN}"),
                     ("user.communes", "mairie-orleans", f"{ORLEANS},{SAINT_JEAN} -> all")]
