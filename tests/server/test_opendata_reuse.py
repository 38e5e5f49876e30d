"""What a re-user of the published package sees: the same figures as the dashboard for the same
month, and a ``datapackage.json`` that says what the files cover and how each column is made."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from server.db import make_engine
from server.ingest.aggregates import add_to_aggregates
from server.migrate import upgrade_database
from server.opendata.export import OpenDataQuery, publication
from server.opendata.package import datapackage
from server.streets.models import Street
from server.web.reports import StreetFilter, street_rows
from tests.server.opendata_homes import give_addresses

OCTOBER = OpenDataQuery("month", 10, date(2026, 10, 1), date(2026, 10, 31))
GEOMETRY = '{"type":"LineString","coordinates":[[1.90,47.90],[1.91,47.90]]}'


def _lift(day: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"street_id": 7, "day": date(2026, 10, day), "stream": "recyclables", "overruled_at": None,
            "contaminated": bool(errors), "has_alert": False, "score": 0.0, "errors": errors, "lat": 47.9,
            "match_confidence": 0.9, "street_confidence": None}


def _error(category: str, count: int) -> dict[str, Any]:
    return {"category": category, "severity": "error", "count": count}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    with Session(engine) as db:
        db.execute(insert(Street), [{"id": 7, "name": "Rue de Bourgogne", "commune": "Orléans", "code_insee": "45234",
                                     "name_key": "rue de bourgogne", "geometry": GEOMETRY, "length_m": 80.0}])
        give_addresses(db, 7, 5)  # households enough to publish
        yield db
    engine.dispose()


def test_top_errors_rank_ties_as_the_dashboard_does(session: Session) -> None:
    """Two categories in as many lifts: the dashboard puts first the one with more items, and so
    must the open data (it put them in alphabetical order: another top error 1 for the same month)."""
    lifts = [_lift(1, [_error("verre", 3)]), _lift(2, [_error("biodechet", 1)]),
             *(_lift(3 + i, []) for i in range(10))]
    add_to_aggregates(session, lifts)
    session.commit()
    dashboard = street_rows(session, StreetFilter(date(2026, 10, 1), date(2026, 10, 31), "recyclables")).streets
    assert [category for category, _, _ in dashboard[0].top_errors] == ["verre", "biodechet"]
    (row,) = publication(session, OCTOBER).records()
    assert [row["top_error_1"], row["top_error_2"]] == ["verre", "biodechet"]


def _published(session: Session, q: OpenDataQuery) -> dict[str, Any]:
    add_to_aggregates(session, [*(_lift(1 + i, [_error("verre", 1)] if i < 2 else []) for i in range(12)),
                                *({**_lift(1, []), "day": date(2026, 11, 2 + i)} for i in range(12))])
    session.commit()
    pub = publication(session, q)
    assert pub.count == 2
    return datapackage(q, datetime(2026, 12, 6, 9, 0, tzinfo=UTC), pub.code_sources, pub)


def test_the_package_says_the_days_and_communes_it_covers(session: Session) -> None:
    """All the history (no ``--since``): the description named its first day "début", which a
    re-user cannot date; the communes covered were said nowhere but in the rows."""
    described = _published(session, OpenDataQuery("month", 10, None, date(2026, 11, 30)))
    assert "du 2026-10-01 au 2026-11-30" in described["description"]
    assert "début" not in described["description"]
    assert described["temporal"] == {"start": "2026-10-01", "end": "2026-11-30"}
    assert described["spatial"] == [{"commune": "Orléans", "code_insee": "45234"}]


def test_every_column_says_what_it_is_and_how_it_is_made(session: Session) -> None:
    described = _published(session, OpenDataQuery("month", 10, None, date(2026, 11, 30)))
    fields = {f["name"]: f for f in described["resources"][0]["schema"]["fields"]}
    assert [name for name, field in fields.items() if not field.get("description")] == []
    assert "objets" in fields["top_error_1"]["description"]  # ties broken as on the dashboard
    assert "apostrophe" in fields["street_name"]["description"]  # the CSV's guard against formulas
    assert "10" in fields["lifts"]["description"]


def test_a_yearly_package_states_its_whole_suppression_rule(session: Session) -> None:
    add_to_aggregates(session, [{**_lift(1, []), "day": date(2025, 3, 1 + i)} for i in range(12)])
    session.commit()
    q = OpenDataQuery("year", 530, date(2025, 1, 1), date(2025, 12, 31), months_k=50)
    described = datapackage(q, datetime(2026, 12, 6, tzinfo=UTC), (), publication(session, q))
    assert "530" in described["description"] and "50" in described["description"]
    assert "mois" in described["description"].split("530", 1)[1]
