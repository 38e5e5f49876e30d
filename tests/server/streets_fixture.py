"""Real Rennes streets in a test database, and GPS points placed on known streets."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from base.paths import REPO_ROOT

RENNES_CENTRE = REPO_ROOT / "tests" / "fixtures" / "geodata" / "rennes-centre.geojson"


@dataclass(frozen=True, slots=True)
class OnStreet:
    street_id: int
    name: str
    lat: float
    lon: float
    heading: float


def rennes_database(database_url: str) -> tuple[Engine, sessionmaker[Session]]:
    """The server's schema at ``database_url`` with the Rennes centre streets imported."""
    from server.db import make_engine
    from server.migrate import upgrade_database

    engine = make_engine(database_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    import_rennes(sessions)
    return engine, sessions


def import_rennes(sessions: sessionmaker[Session]) -> None:
    from server.streets.importer import import_street_file

    with sessions() as session:
        import_street_file(session, RENNES_CENTRE, commune="Rennes")
        session.commit()


def _metres(lat0: float, lon0: float, lat1: float, lon1: float) -> tuple[float, float]:
    dx = math.radians(lon1 - lon0) * 6_371_000 * math.cos(math.radians(lat0))
    dy = math.radians(lat1 - lat0) * 6_371_000
    return dx, dy


def points_on_streets(sessions: sessionmaker[Session], count: int) -> list[OnStreet]:
    """The middle of the longest straight piece of ``count`` different streets, with its heading.

    Long pieces (>= 60 m) only, so the point is far from any junction and unambiguous.
    """
    from server.streets.models import Segment, Street

    found: dict[int, OnStreet] = {}
    with sessions() as session:
        rows = session.execute(select(Segment.street_id, Street.name, Segment.geometry)
                               .join(Street, Street.id == Segment.street_id).order_by(Segment.id))
        for street_id, name, geometry in rows:
            if street_id in found:
                continue
            coords = json.loads(geometry)["coordinates"]
            for (lon0, lat0), (lon1, lat1) in itertools.pairwise(coords):
                dx, dy = _metres(lat0, lon0, lat1, lon1)
                if math.hypot(dx, dy) >= 60:
                    heading = math.degrees(math.atan2(dx, dy)) % 360
                    found[street_id] = OnStreet(street_id, name, (lat0 + lat1) / 2, (lon0 + lon1) / 2, heading)
                    break
            if len(found) == count:
                break
    assert len(found) == count, f"only {len(found)} streets with a long straight piece"
    return list(found.values())
