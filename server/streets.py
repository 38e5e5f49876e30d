"""Streets, their segments and addresses: the tables every lift is matched against.

A *street* is one name in one commune (``Rue de Paris``, ``Rennes``); it owns the *segments*
its OSM ways were cut into at junctions, and the *addresses* linked to it. Street ids are kept
across re-imports (a street is found again by name and commune) because lifts and aggregates
point at them; segment ids are not stable and nothing should keep them as a foreign key.

Geometry is stored as GeoJSON text in WGS84 (lon, lat order), readable by every client and
by both SQLite and PostgreSQL without a spatial extension; the in-memory index lives in
``server.geo``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.db import Base
from server.names import street_key
from server.osm import Piece, StreetFileError, read_ways, split_at_junctions


class Street(Base):
    __tablename__ = "streets"
    __table_args__ = (
        UniqueConstraint("commune", "name", name="uq_streets_commune_name"),
        Index("ix_streets_commune_name_key", "commune", "name_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    commune: Mapped[str] = mapped_column(String(120), index=True)
    # Normalised name (no accents, expanded abbreviations, lower case): what addresses link on.
    name_key: Mapped[str] = mapped_column(String(200))
    # GeoJSON MultiLineString text, WGS84: one line per segment.
    geometry: Mapped[str] = mapped_column(Text)
    length_m: Mapped[float] = mapped_column(Float, default=0.0)


class Segment(Base):
    """A piece of a street between two junctions (or a junction and a dead end)."""

    __tablename__ = "street_segments"
    __table_args__ = (Index("ix_street_segments_bbox", "min_lon", "min_lat"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id", ondelete="CASCADE"), index=True)
    # GeoJSON LineString text, WGS84.
    geometry: Mapped[str] = mapped_column(Text)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    length_m: Mapped[float] = mapped_column(Float)
    highway: Mapped[str] = mapped_column(String(40), default="")
    # 1: one-way in drawing order, -1: against it, 0: both ways (OSM ``oneway``).
    oneway: Mapped[int] = mapped_column(Integer, default=0)
    osm_way_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (Index("ix_addresses_commune_street_key", "commune", "street_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    street_id: Mapped[int | None] = mapped_column(
        ForeignKey("streets.id", ondelete="SET NULL"), nullable=True, index=True)
    number: Mapped[str] = mapped_column(String(20))  # "12", "12 bis"
    label: Mapped[str] = mapped_column(String(300))  # "12 bis Rue de Paris 35000 Rennes"
    street_name: Mapped[str] = mapped_column(String(200))  # as the source spells it
    street_key: Mapped[str] = mapped_column(String(200))  # normalised, see server.names
    postcode: Mapped[str] = mapped_column(String(10), default="")
    commune: Mapped[str] = mapped_column(String(120), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # Made up by ``trivue addresses synthesize`` for demos without an address file: not a real
    # household, whoever shows one should say so.
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    # Identifier in the source (BAN ``id``, Toulouse ``rivoli``+``numero``): re-imports update in place.
    source_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)


@dataclass(frozen=True, slots=True)
class StreetImport:
    """What ``import_streets`` did, for the command's report."""

    communes: tuple[str, ...]
    ways: int
    segments: int
    streets_added: int
    streets_updated: int
    streets_removed: int
    length_km: float
    addresses_linked: int


def import_streets(session: Session, pieces: list[Piece], ways: int = 0) -> StreetImport:
    """Replace the streets of the communes present in ``pieces`` by those pieces.

    A street found again (same commune, same name) keeps its id, so lifts and aggregates that
    point at it stay valid; streets gone from the new data are deleted (their addresses are
    unlinked, segments cascade). Addresses of those communes are re-linked at the end.
    """
    by_street: dict[tuple[str, str], list[Piece]] = defaultdict(list)
    for piece in pieces:
        by_street[(piece.commune, piece.name)].append(piece)
    communes = sorted({commune for commune, _ in by_street})
    existing = {(s.commune, s.name): s for s in
                session.scalars(select(Street).where(Street.commune.in_(communes)))}
    if existing:
        session.execute(delete(Segment).where(Segment.street_id.in_([s.id for s in existing.values()])))
    added = updated = 0
    streets: dict[tuple[str, str], Street] = {}
    for key, street_pieces in by_street.items():
        street = existing.pop(key, None)
        if street is None:
            street = Street(commune=key[0], name=key[1])
            session.add(street)
            added += 1
        else:
            updated += 1
        street.name_key = street_key(key[1])
        street.geometry = json.dumps({"type": "MultiLineString",
                                      "coordinates": [list(map(list, p.coords)) for p in street_pieces]},
                                     separators=(",", ":"))
        street.length_m = sum(p.length_m for p in street_pieces)
        streets[key] = street
    for gone in existing.values():
        session.delete(gone)
    session.flush()
    session.execute(insert(Segment), [_segment_row(streets[(p.commune, p.name)].id, p) for p in pieces])
    session.flush()
    from server.addresses import link_addresses

    links = link_addresses(session, communes)
    linked = links.by_name + links.by_similar_name + links.by_proximity
    return StreetImport(tuple(communes), ways, len(pieces), added, updated, len(existing),
                        sum(s.length_m for s in streets.values()) / 1000, linked)


def _segment_row(street_id: int, piece: Piece) -> dict[str, object]:
    lons = [c[0] for c in piece.coords]
    lats = [c[1] for c in piece.coords]
    return {"street_id": street_id, "highway": piece.highway, "oneway": piece.oneway,
            "osm_way_id": piece.osm_id, "length_m": piece.length_m,
            "geometry": json.dumps({"type": "LineString", "coordinates": [list(c) for c in piece.coords]},
                                   separators=(",", ":")),
            "min_lon": min(lons), "max_lon": max(lons), "min_lat": min(lats), "max_lat": max(lats)}


def import_street_file(session: Session, path: Path, commune: str | None = None) -> StreetImport:
    """Read an OSM or GeoJSON file and replace the streets of its communes."""
    ways = read_ways(path, commune)
    if not ways:
        raise StreetFileError(f"{path}: no named street way found")
    return import_streets(session, split_at_junctions(ways), len(ways))


@dataclass(frozen=True, slots=True)
class StreetRow:
    id: int
    name: str
    commune: str
    length_m: float
    segments: int
    addresses: int


def street_rows(session: Session, commune: str | None = None, name: str | None = None,
                limit: int = 50) -> list[StreetRow]:
    """Streets by commune and name, with their segment and address counts."""
    segments = select(Segment.street_id, func.count().label("n")).group_by(Segment.street_id).subquery()
    addresses = select(Address.street_id, func.count().label("n")).group_by(Address.street_id).subquery()
    query = (select(Street.id, Street.name, Street.commune, Street.length_m,
                    func.coalesce(segments.c.n, 0), func.coalesce(addresses.c.n, 0))
             .outerjoin(segments, segments.c.street_id == Street.id)
             .outerjoin(addresses, addresses.c.street_id == Street.id)
             .order_by(Street.commune, Street.name).limit(limit))
    if commune:
        query = query.where(Street.commune == commune)
    if name:
        query = query.where(Street.name_key.contains(street_key(name), autoescape=True))
    return [StreetRow(*row) for row in session.execute(query)]


def commune_stats(session: Session) -> list[dict[str, object]]:
    """Per commune: streets, segments, kilometres, addresses and how many are linked to a street."""
    stats: dict[str, dict[str, object]] = defaultdict(
        lambda: {"streets": 0, "segments": 0, "km": 0.0, "addresses": 0, "linked": 0, "unlinked": 0})
    for commune, streets, km in session.execute(
            select(Street.commune, func.count(), func.sum(Street.length_m) / 1000).group_by(Street.commune)):
        stats[commune].update(streets=streets, km=float(km or 0))
    for commune, count in session.execute(select(Street.commune, func.count()).join(
            Segment, Segment.street_id == Street.id).group_by(Street.commune)):
        stats[commune]["segments"] = count
    for commune, linked, count in session.execute(
            select(Address.commune, Address.street_id.is_not(None), func.count())
            .group_by(Address.commune, Address.street_id.is_not(None))):
        stats[commune]["linked" if linked else "unlinked"] = count
        stats[commune]["addresses"] = int(stats[commune]["addresses"]) + count  # type: ignore[call-overload]
    return [{"commune": commune, **values} for commune, values in sorted(stats.items())]


# The matcher lives in server.geo; ingest and the server import it from here with the tables.
from server.geo import Locator, Match  # noqa: E402

__all__ = ["Address", "Locator", "Match", "Segment", "Street", "StreetImport", "StreetRow", "commune_stats",
           "import_street_file", "import_streets", "street_rows"]
