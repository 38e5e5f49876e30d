"""Importing street files into the tables, and what is there: streets by commune, per-commune counts.

Street ids are kept across re-imports (a street is found again by name and commune) because
lifts and aggregates point at them; addresses are linked again after every import.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from server.ingest.models import Lift, StreetDay
from server.streets.addresses import link_addresses
from server.streets.models import Address, Segment, Street, StreetNetwork
from server.streets.names import commune_key, street_key
from server.streets.osm import Piece, StreetFileError, read_street_file
from server.streets.outlines import street_pieces


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
    features_without_geometry: int = 0  # GeoJSON features with "geometry": null, skipped
    outline_m_dropped: float = 0.0  # closed ways' stretches on another street (server.streets.outlines)


def import_streets(session: Session, pieces: list[Piece], ways: int = 0) -> StreetImport:
    """Replace the streets of the communes present in ``pieces`` by those pieces.

    A street found again (same commune, same name key) keeps its id, so lifts and aggregates that
    point at it stay valid; streets gone from the new data are deleted (their addresses are
    unlinked, segments cascade). Addresses of those communes are re-linked at the end.
    """
    # Grouped by name key, not by spelling: OSM spells one street differently from way to way
    # ("Rue de Châteaugiron" / "Rue de Chateaugiron", "rue" / "Rue", ' / ’ in Rennes), and two
    # streets with one key split its lifts and left one of them without addresses.
    keys = [(piece.commune, street_key(piece.name) or piece.name) for piece in pieces]
    by_street: dict[tuple[str, str], list[Piece]] = defaultdict(list)
    for key, piece in zip(keys, pieces, strict=True):
        by_street[key].append(piece)
    names = {key: display_name(group) for key, group in by_street.items()}
    communes = sorted({commune for commune, _ in by_street})
    existing, doubles = _existing_streets(session, communes, names)
    if existing:
        session.execute(delete(Segment).where(Segment.street_id.in_([s.id for s in existing.values()])))
    added = updated = 0
    streets: dict[tuple[str, str], Street] = {}
    fresh = _fresh_ids(session)
    for key, pieces_of_street in by_street.items():
        street = existing.pop(key, None)
        if street is None:
            street = Street(id=next(fresh), commune=key[0], name=names[key])
            session.add(street)
            added += 1
        else:
            updated += 1
        street.name = names[key]
        street.name_key = street_key(names[key])
        street.geometry = json.dumps({"type": "MultiLineString",
                                      "coordinates": [list(map(list, p.coords)) for p in pieces_of_street]},
                                     separators=(",", ":"))
        street.length_m = sum(p.length_m for p in pieces_of_street)
        # The import's code (--insee, the OSM boundary's ref:INSEE) when its pieces agree on one;
        # else the street keeps its code (its addresses', refreshed when they are linked below).
        said = {p.insee for p in pieces_of_street}
        if len(said) == 1 and None not in said:
            street.code_insee = said.pop()
        streets[key] = street
    for gone in existing.values():
        session.delete(gone)
    session.flush()
    segment_rows = [_segment_row(streets[key].id, p) for key, p in zip(keys, pieces, strict=True)]
    session.execute(insert(Segment), segment_rows)
    session.flush()

    network = session.get(StreetNetwork, 1)
    if network is None:
        session.add(StreetNetwork(id=1, revision=1))
    else:
        network.revision += 1
    session.flush()

    links = link_addresses(session, communes)
    linked = links.by_name + links.by_similar_name + links.by_proximity
    return StreetImport(tuple(communes), ways, len(pieces), added, updated, len(existing) + doubles,
                        sum(s.length_m for s in streets.values()) / 1000, linked)


def display_name(pieces: list[Piece]) -> str:
    """The spelling of a street's name that covers most of its length (ties: the first sorted)."""
    lengths: dict[str, float] = defaultdict(float)
    for piece in pieces:
        lengths[piece.name] += piece.length_m
    return min(lengths, key=lambda name: (-round(lengths[name], 3), name))


def _existing_streets(session: Session, communes: list[str],
                      names: dict[tuple[str, str], str]) -> tuple[dict[tuple[str, str], Street], int]:
    """The stored streets of ``communes`` by (commune, name key). Where an earlier import stored
    one key under two spellings, the one spelled as now keeps its id (else the oldest); the
    others are deleted here, before the kept one may take their spelling (unique per commune)."""
    found: dict[tuple[str, str], Street] = {}
    doubles: list[Street] = []
    stored = session.scalars(select(Street).where(Street.commune.in_(communes)).order_by(Street.id))
    for street in stored:
        key = (street.commune, street_key(street.name) or street.name)
        kept = found.get(key)
        if kept is None:
            found[key] = street
        elif street.name == names.get(key) and kept.name != street.name:
            found[key] = street
            doubles.append(kept)
        else:
            doubles.append(street)
    if doubles:
        session.execute(delete(Segment).where(Segment.street_id.in_([s.id for s in doubles])))
        for street in doubles:
            session.delete(street)
        session.flush()
    return found, len(doubles)


def _fresh_ids(session: Session) -> Iterator[int | None]:
    """Ids for the streets an import adds (None: the database's own). SQLite gives a new row the
    highest id + 1, so the street with the highest id, deleted by an import, handed its id to the
    next street added: its lifts (until ``trivue streets rematch``) and its aggregates (for ever,
    on days whose raw lifts are purged) were served as the new street's. New ids start above every
    id the lifts and street aggregates name. PostgreSQL's sequence never gives an id twice."""
    if session.get_bind().dialect.name != "sqlite":
        return itertools.repeat(None)
    highest = max(session.scalar(select(func.max(column))) or 0
                  for column in (Street.id, StreetDay.street_id, Lift.street_id))
    return itertools.count(highest + 1)


def _segment_row(street_id: int, piece: Piece) -> dict[str, object]:
    lons = [c[0] for c in piece.coords]
    lats = [c[1] for c in piece.coords]
    return {"street_id": street_id, "highway": piece.highway, "oneway": piece.oneway,
            "osm_way_id": piece.osm_id, "length_m": piece.length_m,
            "geometry": json.dumps({"type": "LineString", "coordinates": [list(c) for c in piece.coords]},
                                   separators=(",", ":")),
            "min_lon": min(lons), "max_lon": max(lons), "min_lat": min(lats), "max_lat": max(lats)}


def import_street_file(session: Session, path: Path, commune: str | None = None,
                       insee: str | None = None) -> StreetImport:
    """Read an OSM or GeoJSON file and replace the streets of its communes; ``insee`` (with
    ``commune``, checked by the caller) is that commune's code INSEE."""
    if insee is not None and commune is None:  # one code over every commune of the file: wrong for all but one
        raise ValueError("insee: a code INSEE names one commune, give its name too")
    ways, without_geometry = read_street_file(path, commune)
    if not ways:
        skipped = (f" ({without_geometry} feature{'s' if without_geometry != 1 else ''} without geometry)"
                   if without_geometry else "")
        raise StreetFileError(f"{path}: no named street way found{skipped}")
    pieces, outlines = street_pieces(ways)
    if insee is not None:
        pieces = [replace(piece, insee=insee) for piece in pieces]
    report = import_streets(session, pieces, len(ways))
    return replace(report, features_without_geometry=without_geometry, outline_m_dropped=outlines.total_m)


@dataclass(frozen=True, slots=True)
class StreetRow:
    id: int
    name: str
    commune: str
    length_m: float
    segments: int
    addresses: int


def communes_with_streets(session: Session) -> list[str]:
    return list(session.scalars(select(Street.commune).distinct().order_by(Street.commune)))


def stored_commune(session: Session, typed: str) -> str | None:
    """The commune's name as its streets were imported, ``typed`` compared as address linking compares
    communes (``commune_key``: case, accents, hyphens, the typographic apostrophe of « Cap-d’Ail », « St- »
    for « Saint- »);
    None when no commune with streets matches. The exact spelling first: one indexed look-up."""
    if session.scalar(select(Street.id).where(Street.commune == typed).limit(1)) is not None:
        return typed
    return matching_commune(communes_with_streets(session), typed)


def matching_commune(names: list[str], typed: str) -> str | None:
    """The one of ``names`` that ``typed`` names as address linking compares communes (``commune_key``)."""
    wanted = commune_key(typed)
    return next((name for name in names if commune_key(name) == wanted), None)


def commune_as_stored(session: Session, typed: str) -> str:
    """``stored_commune``, or ``typed`` itself when no commune with streets matches."""
    found = stored_commune(session, typed)
    return typed if found is None else found


def street_rows(session: Session, commune: str | None = None, name: str | None = None,
                limit: int = 50) -> list[StreetRow]:
    """Streets by commune and name (part of it, compared as ``street_key`` compares names), with
    their segment and address counts. ValueError for a name that leaves no key to search for, and
    for a commune without streets, naming those with some (an empty list read as a commune whose
    streets are all there is, when it was a typo)."""
    segments = select(Segment.street_id, func.count().label("n")).group_by(Segment.street_id).subquery()
    addresses = select(Address.street_id, func.count().label("n")).group_by(Address.street_id).subquery()
    query = (select(Street.id, Street.name, Street.commune, Street.length_m,
                    func.coalesce(segments.c.n, 0), func.coalesce(addresses.c.n, 0))
             .outerjoin(segments, segments.c.street_id == Street.id)
             .outerjoin(addresses, addresses.c.street_id == Street.id)
             .order_by(Street.commune, Street.name).limit(limit))
    if commune:
        stored = stored_commune(session, commune)
        if stored is None:
            known = communes_with_streets(session)
            raise ValueError(f"--commune {commune!r}: no street is in it; " + (
                f"the communes with streets: {', '.join(known[:30])}" if known else "no streets are imported yet"))
        query = query.where(Street.commune == stored)
    if name is not None:
        key = street_key(name)
        if not key:  # contained in every name: it listed every street
            raise ValueError(f"--name {name!r}: nothing to search for once case, accents, punctuation and "
                             "articles (l', d', de, la...) are set aside: give a word of the street's name")
        query = query.where(Street.name_key.contains(key, autoescape=True))
    return [StreetRow(*row) for row in session.execute(query)]


def commune_stats(session: Session) -> list[dict[str, object]]:
    """Per commune: streets, segments, kilometres, addresses and how many are linked to a street,
    the codes INSEE its streets carry and how many streets have none."""
    stats: dict[str, dict[str, object]] = defaultdict(
        lambda: {"streets": 0, "segments": 0, "km": 0.0, "addresses": 0, "linked": 0, "unlinked": 0,
                 "insee": (), "without_insee": 0})
    for commune, streets, km, coded in session.execute(
            select(Street.commune, func.count(), func.sum(Street.length_m) / 1000, func.count(Street.code_insee))
            .group_by(Street.commune)):
        stats[commune].update(streets=streets, km=float(km or 0), without_insee=streets - coded)
    codes: dict[str, list[str]] = defaultdict(list)
    for commune, code in session.execute(select(Street.commune, Street.code_insee).distinct()
                                         .where(Street.code_insee.is_not(None)).order_by(Street.code_insee)):
        codes[commune].append(code)
    for commune, found in codes.items():  # more than one: two communes of one name, said as such
        stats[commune]["insee"] = tuple(found)
    for commune, count in session.execute(select(Street.commune, func.count()).join(
            Segment, Segment.street_id == Street.id).group_by(Street.commune)):
        stats[commune]["segments"] = count
    for commune, linked, count in session.execute(
            select(Address.commune, Address.street_id.is_not(None), func.count())
            .group_by(Address.commune, Address.street_id.is_not(None))):
        stats[commune]["linked" if linked else "unlinked"] = count
        stats[commune]["addresses"] = int(stats[commune]["addresses"]) + count  # type: ignore[call-overload]
    return [{"commune": commune, **values} for commune, values in sorted(stats.items())]
