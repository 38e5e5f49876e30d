"""Lifts of registered RFID bins: their address and street come from the bin registry.

The registry itself (the import, the table) is ``server.streets.bins``; ingest asks it once per
batch through a ``BinLookup`` it is given (the composition root passes
``server.streets.bins.bin_places``), so this layer needs nothing above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from server.ingest.aggregates import LiftRow, MatchColumns

METRES_PER_DEGREE = 111_195.0  # of latitude, on the mean Earth radius


class BinPlace(Protocol):
    """Where a registered bin's lifts belong (``server.streets.bins.BinPlace``)."""

    @property
    def street_id(self) -> int: ...
    @property
    def address_id(self) -> int | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lon(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class KeptPlace:
    """The street of a lift the registry placed and that no longer has its tag (stored at street
    level, docs/privacy.md §1 bis): it stays there, its address was never kept."""

    street_id: int
    address_id: None = None
    lat: None = None
    lon: None = None


# The bin registry as ingest asks it: the place of each registered tag among these.
BinLookup = Callable[[Session, Collection[str]], Mapping[str, BinPlace]]


def registered(session: Session, bins: BinLookup | None, rows: Sequence[LiftRow | dict[str, Any]]
               ) -> Mapping[str, BinPlace]:
    """The registry's places of the rows' tags (none without a registry): one query per batch."""
    tags = {r["bin_id"] for r in rows if r.get("bin_id")}
    return bins(session, tags) if bins is not None and tags else {}


def place_of(row: LiftRow | dict[str, Any], places: Mapping[str, BinPlace]) -> BinPlace | None:
    """The registered place of the lift's tag, None when the registry does not know it; for a lift
    stored without its tag, the street the registry gave it (``KeptPlace``) or None."""
    tag = row.get("bin_id")
    if tag:
        return places.get(tag)
    if row.get("registry_placed") and row.get("street_id") is not None:
        return KeptPlace(row["street_id"])
    return None


def place_tagged(rows: Sequence[LiftRow], places: Mapping[str, BinPlace]) -> None:
    """Put each lift whose tag the registry knows on its address (``bin_columns``), with or without
    a fix; the others keep the street they were matched to, or none."""
    for row in rows:
        if (place := place_of(row, places)) is not None:
            row.update(bin_columns(place, row, row["lat"], row["lon"]))


def bin_columns(place: BinPlace, found: MatchColumns, lat: float | None, lon: float | None) -> MatchColumns:
    """The street/address columns of a lift whose tag the registry knows: its address's, certain.
    The fix only says where on the street the truck stood, when it matched that street."""
    same = found["street_id"] == place.street_id
    distance = None
    if lat is not None and lon is not None and place.lat is not None and place.lon is not None:
        kx = math.cos(math.radians(lat)) * METRES_PER_DEGREE
        distance = round(math.hypot((place.lon - lon) * kx, (place.lat - lat) * METRES_PER_DEGREE), 2)
    return {"street_id": place.street_id, "segment_id": found["segment_id"] if same else None,
            "street_distance_m": found["street_distance_m"] if same else None,
            "address_id": place.address_id, "address_distance_m": distance, "match_confidence": 1.0,
            "street_confidence": 1.0, "registry_placed": True}
