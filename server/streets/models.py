"""Streets, their segments and addresses: the tables every lift is matched against.

A *street* is one name in one commune (``Rue de Paris``, ``Rennes``); it owns the *segments*
its OSM ways were cut into at junctions, and the *addresses* linked to it. Street ids are kept
across re-imports (a street is found again by name and commune) because lifts and aggregates
point at them; segment ids are not stable and nothing should keep them as a foreign key.

Geometry is stored as GeoJSON text in WGS84 (lon, lat order), readable by every client and
by both SQLite and PostgreSQL without a spatial extension; the in-memory index lives in
``server.streets.locator``; importing them is ``server.streets.importer``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


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
    # The commune's code INSEE (code officiel géographique, "35238", "2A004"), from real data only:
    # the BAN addresses linked to the street, else ``--insee`` or the OSM boundary's ``ref:INSEE``
    # at import (``server.streets.insee``). None when nothing says it: a name alone is ambiguous.
    code_insee: Mapped[str | None] = mapped_column(String(5), nullable=True)


class StreetNetwork(Base):
    """One row: the street network's revision, bumped by every street import. Whoever keeps
    streets in memory (the street list's encoded names and geometries) compares it to reload:
    an import may rewrite geometries without changing how many streets or segments there are."""

    __tablename__ = "street_network"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


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
    street_key: Mapped[str] = mapped_column(String(200))  # normalised, see server.streets.names
    postcode: Mapped[str] = mapped_column(String(10), default="")
    commune: Mapped[str] = mapped_column(String(120), index=True)
    code_insee: Mapped[str | None] = mapped_column(String(5), nullable=True)  # BAN ``code_insee``
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # Made up by ``trivue addresses synthesize`` for demos without an address file: not a real
    # household, whoever shows one should say so.
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    # Identifier in the source (BAN ``id``, Toulouse ``rivoli``+``numero``): re-imports update in place.
    source_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)


class Bin(Base):
    """A tagged bin of the collectivity's bin inventory (*parc de bacs*): its RFID tag and the
    address it serves, imported with ``trivue bins import``. A lift that reads the tag is that
    address's, whatever its GPS fix says (``server.streets.bins``)."""

    __tablename__ = "bins"

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)  # canonical form (base.bin_tags)
    # An address removed by a later address import leaves its bins unplaced, not deleted: the
    # next bin import says which they are.
    address_id: Mapped[int | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="SET NULL"), nullable=True, index=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
