"""Addresses for the open data tests: the export publishes a street only with enough known households."""

from __future__ import annotations

import json

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from server.streets.models import Address, Street


def give_addresses(session: Session, street_id: int, count: int, synthetic: bool = False) -> None:
    """``count`` addresses linked to the street, on its first point (real ones unless ``synthetic``)."""
    if not count:
        return
    name, commune, geometry = session.execute(
        select(Street.name, Street.commune, Street.geometry).where(Street.id == street_id)).one()
    lines = json.loads(geometry)["coordinates"]
    lon, lat = lines[0][0] if isinstance(lines[0][0], list) else lines[0]
    kind = "synthetic" if synthetic else "test"
    session.execute(insert(Address), [
        {"street_id": street_id, "number": str(n), "label": f"{n} {name} {commune}", "street_name": name,
         "street_key": name.lower(), "postcode": "", "commune": commune, "code_insee": None, "lat": lat, "lon": lon,
         "synthetic": synthetic, "source_key": f"{kind}:{street_id}:{n}"} for n in range(1, count + 1)])
