"""Address files: Base Adresse Nationale CSV and the Toulouse open-data extract, streamed into
the ``addresses`` table and linked to streets.

Both are ``;``-separated and recognised by their header. A département BAN file holds hundreds
of thousands of rows, so rows are read one at a time (``.gz`` and ``.bz2`` decompressed on the
fly) and written in batches; a re-import updates addresses in place by their source id and
removes, in the communes it covers, those the new file no longer has.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.streets.insee import RULE, code_insee
from server.streets.locator import Locator
from server.streets.models import Address, Street
from server.streets.names import commune_key, significant_words, street_key
from server.streets.osm import on_the_globe

log = logging.getLogger(__name__)

BAN_COLUMNS = ("id", "numero", "rep", "nom_voie", "code_postal", "code_insee", "nom_commune", "lon", "lat")
TOULOUSE_COLUMNS = ("no", "numero", "lib_off", "rivoli", "X_WGS84", "Y_WGS84")
BATCH = 5000
SIMILAR_NAME_M = 60.0  # an address links to a nearby street sharing a significant word of its name
PROXIMITY_M = 30.0  # else to the nearest street of its commune this close, else stays unlinked
_HOUSE_NUMBER = re.compile(r"^(\d+)\s*([A-Z]*)$")  # "12", "12B", "12 BIS"
REP_WORDS = {"B": "bis", "T": "ter", "Q": "quater", "C": "quinquies"}


class AddressFileError(ValueError):
    """An address file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class LinkReport:
    by_name: int
    by_similar_name: int
    by_proximity: int
    unlinked: int


@dataclass(frozen=True, slots=True)
class AddressImport:
    format: str
    rows: int
    imported: int
    removed: int
    skipped_no_position: int
    communes: tuple[str, ...]
    links: LinkReport


def open_text(path: Path) -> tuple[BinaryIO, io.TextIOWrapper]:
    """(raw file for progress by bytes read, decoded text stream), decompressing by suffix."""
    raw = path.open("rb")
    name = path.name.lower()
    binary: BinaryIO = raw
    if name.endswith(".gz"):
        binary = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif name.endswith(".bz2"):
        binary = bz2.BZ2File(raw)  # type: ignore[assignment]
    return raw, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def _rows(path: Path, text: io.TextIOWrapper) -> tuple[str, Iterator[tuple[int, dict[str, str]]]]:
    """The file's format, from its header, and its data rows with their line numbers."""
    reader = csv.reader(text, delimiter=";")
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise AddressFileError(f"{path}: empty file") from None
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as error:
        raise AddressFileError(f"{path} line 1: unreadable ({error})") from error
    if set(BAN_COLUMNS) <= set(header):
        kind = "ban"
    elif set(TOULOUSE_COLUMNS) <= set(header):
        kind = "toulouse"
    else:
        raise AddressFileError(f"{path} line 1: not a BAN or Toulouse address header "
                               f"(needs {';'.join(BAN_COLUMNS)} or {';'.join(TOULOUSE_COLUMNS)})")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for row in reader:
                if not row or row == [""]:
                    continue
                if len(row) != len(header):
                    raise AddressFileError(f"{path} line {reader.line_num}: {len(row)} fields, "
                                           f"the header has {len(header)}")
                yield reader.line_num, dict(zip(header, row, strict=True))
        except (UnicodeDecodeError, OSError, EOFError, csv.Error) as error:
            raise AddressFileError(f"{path} line {reader.line_num + 1}: unreadable ({error})") from error

    return kind, rows()


def _number(value: str) -> float:
    return float(value.strip().replace(",", "."))


def parse_row(path: Path, line: int, row: dict[str, str], kind: str, commune: str | None) -> dict | None:
    """The ``addresses`` row of one file row; None when it has no position."""
    try:
        if kind == "ban":
            lon, lat = row["lon"], row["lat"]
            rep = row["rep"].strip()
            number = f"{row['numero'].strip()} {rep}".strip()
            name, postcode = row["nom_voie"].strip(), row["code_postal"].strip()
            town = commune or row["nom_commune"].strip()
            source = f"ban:{row['id'].strip()}"
            # The commune's code, kept even under --commune: a name chosen by the operator does
            # not change which commune the address is in. Empty: unknown; anything else: refused.
            code = code_insee(row["code_insee"]) if row["code_insee"].strip() else None
            if row["code_insee"].strip() and code is None:
                raise ValueError(f"code INSEE {row['code_insee']!r}: {RULE}")
        else:
            lon, lat = row["X_WGS84"], row["Y_WGS84"]
            raw = row["no"].strip().upper()
            parts = _HOUSE_NUMBER.match(raw)
            if parts is None:
                raise ValueError(f"house number {raw!r}")
            suffix = parts[2]
            number = f"{int(parts[1])} {REP_WORDS.get(suffix, suffix.lower())}".strip()
            name, postcode, town = row["lib_off"].strip(), "", commune or "Toulouse"
            code = None  # the extract has no code column, and a name alone says none
            source = f"toulouse:{row['rivoli'].strip()}:{raw}"
        if not lon.strip() or not lat.strip():
            return None
        lon_f, lat_f = _number(lon), _number(lat)
    except ValueError as error:
        raise AddressFileError(f"{path} line {line}: bad value ({error})") from error
    if not on_the_globe(lon_f, lat_f):
        raise AddressFileError(f"{path} line {line}: position {lat}, {lon} outside WGS84 bounds")
    if not name or not number:
        raise AddressFileError(f"{path} line {line}: missing street name or number")
    label = " ".join(part for part in (number, name, postcode, town) if part)
    return {"number": number, "label": label, "street_name": name, "street_key": street_key(name),
            "postcode": postcode, "commune": town, "code_insee": code, "lat": lat_f, "lon": lon_f,
            "synthetic": False, "source_key": source[:80], "street_id": None}


def import_address_file(session: Session, path: Path, commune: str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> AddressImport:
    """Stream ``path`` into the ``addresses`` table, then link the addresses to streets.

    ``progress(bytes_read, total_bytes)`` is called after every batch (bytes of the file on
    disk, so it works for compressed files too). The caller commits.
    """
    if not path.is_file():
        raise AddressFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    total = path.stat().st_size
    raw, text = open_text(path)
    with raw, text:
        kind, rows = _rows(path, text)
        loaded = _load(session, path, kind, rows, commune, lambda: progress and progress(raw.tell(), total))
    if progress:
        progress(total, total)
    communes = sorted(loaded.communes)
    removed = _remove_missing(session, communes, loaded.keys)
    links = link_addresses(session, communes)
    return AddressImport(kind, loaded.rows, loaded.imported, removed, loaded.skipped, tuple(communes), links)


@dataclass
class _Loaded:
    rows: int = 0
    imported: int = 0
    skipped: int = 0
    keys: set[str] = field(default_factory=set)
    communes: set[str] = field(default_factory=set)


def _load(session: Session, path: Path, kind: str, rows: Iterable[tuple[int, dict[str, str]]],
          commune: str | None, tick: Callable[[], object]) -> _Loaded:
    loaded = _Loaded()
    # Linking by name while streaming writes each address once; link_addresses then only
    # touches the few that need a nearby street.
    by_name = _streets_by_name(session)
    batch: list[dict] = []
    for line, row in rows:
        loaded.rows += 1
        record = parse_row(path, line, row, kind, commune)
        if record is None:
            loaded.skipped += 1
            continue
        if record["source_key"] in loaded.keys:
            raise AddressFileError(f"{path} line {line}: duplicate address id {record['source_key']}")
        loaded.keys.add(record["source_key"])
        loaded.communes.add(record["commune"])
        record["street_id"] = by_name.get(commune_key(record["commune"]), {}).get(record["street_key"])
        batch.append(record)
        if len(batch) >= BATCH:
            loaded.imported += _upsert(session, batch)
            batch = []
            tick()
    loaded.imported += _upsert(session, batch)
    return loaded


def _upsert(session: Session, batch: list[dict]) -> int:
    if not batch:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(Address)
    columns = {key: getattr(statement.excluded, key) for key in batch[0]}
    session.execute(statement.on_conflict_do_update(index_elements=["source_key"], set_=columns), batch)
    return len(batch)


def _remove_missing(session: Session, communes: list[str], keep: set[str]) -> int:
    """Delete the imported (non-synthetic) addresses of ``communes`` that the new file lacks."""
    stale = [row_id for row_id, key in session.execute(
        select(Address.id, Address.source_key).where(Address.commune.in_(communes),
                                                    Address.source_key.is_not(None)))
             if key not in keep]
    for start in range(0, len(stale), BATCH):
        session.execute(delete(Address).where(Address.id.in_(stale[start:start + BATCH])))
    return len(stale)


def link_addresses(session: Session, communes: list[str]) -> LinkReport:
    """Point every address of ``communes`` at its street: same name key in the same commune,
    else a street nearby sharing a significant word of the name, else the nearest street."""
    streets = _streets_by_name(session)
    names = {street_id: (town, key) for town, keys in streets.items() for key, street_id in keys.items()}
    wanted = {commune_key(c) for c in communes}
    rows = [r for r in session.execute(select(Address.id, Address.street_id, Address.street_key,
                                              Address.commune, Address.lat, Address.lon))
            if commune_key(r.commune) in wanted]
    locator: Locator | None = None
    counts = [0, 0, 0, 0]
    changes: list[dict[str, int | None]] = []
    for row in rows:
        town = commune_key(row.commune)
        target, how = streets.get(town, {}).get(row.street_key), 0
        if target is None and town in streets:
            locator = locator or Locator.from_session(session, with_addresses=False)
            target, how = _nearby_street(locator, row, names, town)
        elif target is None:
            how = 3
        counts[how] += 1
        if target != row.street_id:
            changes.append({"id": row.id, "street_id": target})
    _apply_links(session, changes)
    refresh_street_codes(session, communes)
    report = LinkReport(*counts)
    log.info("addresses of %s: %d linked by name, %d by similar name nearby, %d to the nearest street, "
             "%d unlinked", ", ".join(communes), *counts)
    return report


def _streets_by_name(session: Session) -> dict[str, dict[str, int]]:
    """Street ids by commune key, then name key."""
    streets: dict[str, dict[str, int]] = {}
    for street_id, town, key in session.execute(select(Street.id, Street.commune, Street.name_key)):
        streets.setdefault(commune_key(town), {})[key] = street_id
    return streets


def _nearby_street(locator: object, row: object, names: dict[int, tuple[str, str]],
                   town: str) -> tuple[int | None, int]:
    words = significant_words(row.street_key)  # type: ignore[attr-defined]
    around = locator.nearby_streets(row.lat, row.lon, SIMILAR_NAME_M)  # type: ignore[attr-defined]
    # A way drawn across the commune border belongs wholly to one commune (its middle vertex's):
    # the other side's addresses of that street find it here, under the neighbour's name,
    # rather than the nearest street of their own commune.
    for street_id, _distance in around:
        if names.get(street_id, ("", ""))[1] == row.street_key:  # type: ignore[attr-defined]
            return street_id, 1
    nearby = [(distance, street_id) for street_id, distance in around
              if names.get(street_id, ("", ""))[0] == town]
    for _distance, street_id in nearby:
        if words & set(names[street_id][1].split()):
            return street_id, 1
    if nearby and nearby[0][0] <= PROXIMITY_M:
        return nearby[0][1], 2
    return None, 3


def _apply_links(session: Session, changes: list[dict[str, int | None]]) -> None:
    for start in range(0, len(changes), BATCH):  # ORM bulk update by primary key
        session.execute(update(Address), changes[start:start + BATCH])


def refresh_street_codes(session: Session, communes: list[str]) -> int:
    """Give the streets of ``communes`` the code most of their own commune's linked addresses
    carry; a street whose addresses say nothing (or tie) keeps what its import said. Returns how
    many streets changed."""
    wanted = {commune_key(c) for c in communes}
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    current: dict[int, str | None] = {}
    rows = session.execute(select(Street.id, Street.commune, Street.code_insee, Address.commune,
                                  Address.code_insee)
                           .join(Address, Address.street_id == Street.id)
                           .where(Address.code_insee.is_not(None)))
    for street_id, town, code, address_town, address_code in rows:
        town_key = commune_key(town)
        if town_key in wanted and commune_key(address_town) == town_key:
            votes[street_id][address_code] += 1
            current[street_id] = code
    changes = []
    for street_id, counts in votes.items():
        (code, count), *runner_up = counts.most_common(2)
        if runner_up and runner_up[0][1] == count:  # two communes of one name: the data cannot say
            continue
        if current[street_id] != code:
            changes.append({"id": street_id, "code_insee": code})
    for start in range(0, len(changes), BATCH):
        session.execute(update(Street), changes[start:start + BATCH])
    return len(changes)
