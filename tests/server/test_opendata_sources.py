"""The open data package names the sources its codes INSEE actually came from: the Base Adresse
Nationale only when a published street's code is its linked addresses' (it was listed always, also
for codes from the OSM commune boundaries' ``ref:INSEE`` or ``--insee``), the import otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert, select, update

from server.ingest.models import StreetDay
from server.ingest.rollups import rebuild_rollups
from server.opendata.export import OpenDataQuery, publication
from server.opendata.package import datapackage
from server.streets.models import Address, Street
from tests.server.conftest import RennesDatabase
from tests.server.opendata_homes import give_addresses

DAY = date(2026, 10, 9)
BAN = "Base Adresse Nationale"


def _sources(rennes_db: RennesDatabase) -> list[str]:
    with rennes_db.sessions() as session:
        pub = publication(session, OpenDataQuery("month", 10, date(2026, 10, 1), date(2026, 10, 31)))
        assert pub.count == 2
        return [s["title"] for s in datapackage(OpenDataQuery(), datetime.now(UTC), pub.code_sources)["sources"]]


def _published(rennes_db: RennesDatabase) -> list[int]:
    with rennes_db.sessions() as session:
        ids = list(session.scalars(select(Street.id).order_by(Street.id).limit(2)))
        session.execute(insert(StreetDay), [{"street_id": sid, "day": DAY, "stream": "recyclables", "lifts": 12,
                                             "contaminated": 3, "alerts": 0, "score": 3.0} for sid in ids])
        rebuild_rollups(session)
        for sid in ids:  # households enough to publish, with no code INSEE of their own
            give_addresses(session, sid, 5)
        session.commit()
    return ids


def test_codes_from_the_osm_boundaries_name_no_ban(rennes_db: RennesDatabase) -> None:
    ids = _published(rennes_db)
    assert not any(BAN in title or "INSEE" in title for title in _sources(rennes_db))  # no code at all
    with rennes_db.sessions() as session:  # as an import of a .osm.pbf with its commune boundary says
        session.execute(update(Street).where(Street.id.in_(ids)).values(code_insee="35238"))
        session.commit()
    titles = _sources(rennes_db)
    assert not any(BAN in title for title in titles)
    assert any("ref:INSEE" in title and "--insee" in title for title in titles), titles
    assert any("OpenStreetMap" in title for title in titles)  # the names and geometries


def test_codes_from_the_linked_addresses_name_the_ban(rennes_db: RennesDatabase) -> None:
    ids = _published(rennes_db)
    with rennes_db.sessions() as session:
        session.execute(update(Street).where(Street.id.in_(ids)).values(code_insee="35238"))
        session.add(Address(source_key="35238_0001_00001", number="1", label="1 x", street_name="x", street_key="x",
                            postcode="35000", commune="Rennes", code_insee="35238", lat=48.11, lon=-1.68,
                            street_id=ids[0]))
        session.commit()
    titles = _sources(rennes_db)
    assert any(BAN in title for title in titles)
    assert any("ref:INSEE" in title for title in titles)  # the other street's code is its import's
    with rennes_db.sessions() as session:
        session.add(Address(source_key="35238_0001_00002", number="2", label="2 x", street_name="x", street_key="x",
                            postcode="35000", commune="Rennes", code_insee="35238", lat=48.11, lon=-1.68,
                            street_id=ids[1]))
        session.commit()
    titles = _sources(rennes_db)
    assert any(BAN in title for title in titles) and not any("ref:INSEE" in title for title in titles)
