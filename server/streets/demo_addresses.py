"""Made-up house numbers along a commune's streets, for demos where no address register exists.

The shared Rennes street network has no address file; household-level features (reminders,
routes) still need addresses to be shown. These are laid every ``spacing_m`` metres on both
sides of each street (odd numbers on the left of the drawing direction, even on the right),
flagged ``synthetic`` so that no one mistakes them for real households, and refused in a
commune that has imported addresses.
"""

from __future__ import annotations

import json
import math

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from server.streets.importer import commune_as_stored, communes_with_streets
from server.streets.models import Address, Segment, Street
from server.streets.names import street_key
from server.streets.osm import EARTH_RADIUS_M


class SyntheticAddressError(ValueError):
    """Synthetic addresses cannot be made here (no streets, or real addresses present)."""


def synthesize_addresses(session: Session, commune: str, spacing_m: float = 25.0, offset_m: float = 8.0,
                         postcode: str = "") -> int:
    """Replace the synthetic addresses of ``commune`` (as typed: spelled as its streets were imported
    or not, ``commune_as_stored``); returns how many were made. The caller commits."""
    commune = commune_as_stored(session, commune)
    real = session.scalar(select(func.count()).select_from(Address).where(
        Address.commune == commune, Address.synthetic.is_(False)))
    if real:
        raise SyntheticAddressError(f"{commune} has {real} imported addresses: synthetic ones are only "
                                    "for communes without an address file")
    # by id: the addresses' ids (households' keys) are the same whatever order a scan reads streets in
    streets = session.execute(select(Street.id, Street.name).where(Street.commune == commune).order_by(Street.id)).all()
    if not streets:
        known = communes_with_streets(session)
        raise SyntheticAddressError(f"no street in commune {commune!r}: " + (
            f"the streets are in {', '.join(known)}" if known else "import streets first"))
    session.execute(delete(Address).where(Address.commune == commune, Address.synthetic.is_(True)))
    rows: list[dict[str, object]] = []
    for street_id, name in streets:
        geometries = session.scalars(select(Segment.geometry).where(Segment.street_id == street_id)
                                     .order_by(Segment.id))
        points = [p for g in geometries for p in _along(json.loads(g)["coordinates"], spacing_m, offset_m)]
        for index, (side, lon, lat) in enumerate(points):
            number = str(2 * (index // 2) + (1 if side > 0 else 2))
            label = " ".join(part for part in (number, name, postcode, commune) if part)
            rows.append({"street_id": street_id, "number": number, "label": label, "street_name": name,
                         "street_key": street_key(name), "postcode": postcode, "commune": commune,
                         "lat": lat, "lon": lon, "synthetic": True,
                         "source_key": f"synthetic:{street_id}:{index}"})
    for start in range(0, len(rows), 5000):
        session.execute(insert(Address), rows[start:start + 5000])
    return len(rows)


def _along(coords: list[list[float]], spacing_m: float, offset_m: float) -> list[tuple[int, float, float]]:
    """(side, lon, lat) pairs every ``spacing_m`` along the line, ``offset_m`` to the left (+1) and right."""
    pts = np.asarray(coords, dtype=float)
    lat0 = float(pts[:, 1].mean())
    kx, ky = math.cos(math.radians(lat0)) * EARTH_RADIUS_M * math.pi / 180, EARTH_RADIUS_M * math.pi / 180
    xy = np.column_stack([(pts[:, 0] - pts[0, 0]) * kx, (pts[:, 1] - pts[0, 1]) * ky])
    steps = np.hypot(*np.diff(xy, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    result: list[tuple[int, float, float]] = []
    for s in np.arange(spacing_m / 2, along[-1], spacing_m):
        i = min(int(np.searchsorted(along, s, side="right")) - 1, len(steps) - 1)
        if steps[i] == 0:
            continue
        direction = (xy[i + 1] - xy[i]) / steps[i]
        here = xy[i] + direction * (s - along[i])
        for side in (1, -1):
            x, y = here + side * offset_m * np.array([-direction[1], direction[0]])
            result.append((side, pts[0, 0] + x / kx, pts[0, 1] + y / ky))
    return result
