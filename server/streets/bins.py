"""The bin registry (*parc de bacs*): which address each RFID-tagged bin serves.

A collectivity that tags its bins (every one under *redevance* or *tarification incitative*)
keeps an inventory of them: the tag's number and the household's address. When a lift carries a
tag the registry knows, the lift is that address's, on that address's street, whatever its GPS
fix says: the fix is metres off, the tag is not. Such a lift also pins its truck's path
(``server.ingest.tracks``), which helps the untagged lifts around it.

The file (``trivue bins import``) is a CSV with a header naming a tag column (``tag``, ``puce``,
``rfid``, ``identifiant_puce``...) and an address column holding the address's identifier in
its source: the Base Adresse Nationale ``id`` (*clé d'interopérabilité*, ``45234_0560_00012``),
the key every BAN-based bin inventory carries, or the Toulouse extract's key. Tags of addresses
the server does not hold are listed with their line, not guessed.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from base.bin_tags import canonical_tag
from base.ids import ID_PATTERN
from server.streets.addresses import open_text
from server.streets.models import Address, Bin

# Header names after ``_plain`` (lower case, no accents, spaces for _ - '), by priority.
TAG_COLUMNS = ("tag", "puce", "rfid", "tag rfid", "numero de puce", "numero puce", "identifiant puce",
               "identifiant de puce", "id puce", "code puce", "bin", "bac")
ADDRESS_COLUMNS = ("address", "adresse", "address id", "id adresse", "identifiant adresse", "id ban", "ban id",
                   "identifiant ban", "cle interop", "cle d interoperabilite", "cle interoperabilite", "id")
MAX_TAG = 64  # the lifts table's bin_id
_TAG = re.compile(ID_PATTERN)
BATCH = 5000
SHOWN_ERRORS = 20  # per kind, in the report; the counts are complete


class BinFileError(ValueError):
    """A bin file that cannot be read at all; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class BinPlace:
    """Where a registered bin's lifts belong (``server.ingest.bins.BinPlace``)."""

    street_id: int
    address_id: int
    lat: float
    lon: float


@dataclass
class BinImport:
    rows: int = 0
    added: int = 0
    moved: int = 0  # tags already known, now at another address
    unchanged: int = 0
    removed: int = 0  # with ``replace``: tags the file no longer lists
    registered: int = 0  # with ``replace``: tags registered before this import
    unknown_address: int = 0  # rows whose address the server does not hold: not imported
    errors: list[str] = field(default_factory=list)  # "line N: ...", at most SHOWN_ERRORS per kind


def _plain(header: str) -> str:
    text = unicodedata.normalize("NFKD", header.strip().lower()).encode("ascii", "ignore").decode()
    return " ".join(text.replace("_", " ").replace("-", " ").replace("'", " ").split())


def _columns(path: Path, header: list[str]) -> tuple[int, int]:
    names = [_plain(h) for h in header]
    # By the names' priority, not the header's order: a row number called ``id`` must not win over ``id_ban``.
    tag = next((names.index(n) for n in TAG_COLUMNS if n in names), None)
    address = next((names.index(n) for n in ADDRESS_COLUMNS if n in names and names.index(n) != tag), None)
    if tag is None or address is None:
        raise BinFileError(f"{path} line 1: needs a tag column ({', '.join(TAG_COLUMNS[:4])}...) and an "
                           f"address column ({', '.join(ADDRESS_COLUMNS[:5])}...); the header has {header}")
    return tag, address


def read_bin_file(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, tag, address key) of each data row, the tag in its canonical form
    (``base.bin_tags``: as the lifts carry it); raises ``BinFileError`` on an unreadable file."""
    if not path.is_file():
        raise BinFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    raw, text = open_text(path)
    with raw, text:
        try:
            first = text.readline()
        except (UnicodeDecodeError, OSError, EOFError) as error:
            raise BinFileError(f"{path} line 1: unreadable ({error}); save the file as CSV UTF-8") from error
        if not first.strip():
            raise BinFileError(f"{path}: empty file")
        # French office exports use ';', others ',' or tabs: the header says which.
        delimiter = max(";,\t", key=first.count)
        reader = csv.reader(io.StringIO(first), delimiter=delimiter)
        header = next(reader)
        tag_at, address_at = _columns(path, header)
        rows = csv.reader(text, delimiter=delimiter)
        try:
            for number, row in enumerate(rows, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                cells = row + [""] * (len(header) - len(row))  # a short row: its missing cells are empty
                yield number, canonical_tag(cells[tag_at]), cells[address_at].strip()
        except (UnicodeDecodeError, OSError, EOFError, csv.Error) as error:
            raise BinFileError(f"{path} near line {rows.line_num + 1}: unreadable ({error}); "
                               "save the file as CSV UTF-8") from error


class _Errors:
    """The report's error lines: at most ``SHOWN_ERRORS`` of each kind (the counts are complete)."""

    def __init__(self, report: BinImport) -> None:
        self.report, self.kinds = report, Counter[str]()

    def __call__(self, kind: str, line: int, text: str) -> None:
        self.kinds[kind] += 1
        if self.kinds[kind] <= SHOWN_ERRORS:
            self.report.errors.append(f"line {line}: {text}")


def _wanted(path: Path, report: BinImport, error: _Errors) -> dict[str, tuple[int, str]]:
    """tag -> (line, address key) of the file's valid rows; a tag listed twice keeps its last line."""
    wanted: dict[str, tuple[int, str]] = {}
    for line, tag, key in read_bin_file(path):
        report.rows += 1
        if not tag:
            error("tag", line, "no tag")
        elif len(tag) > MAX_TAG:
            error("tag", line, f"tag {tag[:20]!r}... longer than {MAX_TAG} characters")
        elif not _TAG.match(tag):  # no lift could carry it: the wire's bin_id pattern
            error("tag", line, f"tag {tag!r}: only letters, digits, '-', '_' and '.' (spaces and ':' are dropped)")
        elif not key:
            error("address", line, f"tag {tag!r} has no address")
        else:
            if tag in wanted:
                error("twice", line, f"tag {tag!r} listed again (line {wanted[tag][0]}); this line is kept")
            wanted[tag] = (line, key)
    return wanted


# How ``trivue addresses import`` keys what it stores (``server.streets.addresses.parse_row``): an
# inventory holds the source's own id (the BAN's ``45234_0560_00012``), without the prefix.
SOURCE_PREFIXES = ("ban:", "toulouse:")


def _addresses(session: Session, keys: Collection[str]) -> dict[str, int]:
    """The address id of each key found: as stored, or as the address importer stores a source's id."""
    stored = {key: key for key in keys}
    stored.update({f"{prefix}{key}": key for key in keys for prefix in SOURCE_PREFIXES
                   if not key.startswith(SOURCE_PREFIXES)})
    found: dict[str, int] = {}
    for source_key, address_id in session.execute(select(Address.source_key, Address.id)
                                                  .where(Address.source_key.in_(sorted(stored)))).all():
        if source_key == stored[source_key]:
            found[source_key] = address_id  # the key as stored beats a prefixed match
        else:
            found.setdefault(stored[source_key], address_id)
    return found


def import_bins(session: Session, path: Path, replace: bool = False) -> BinImport:
    """Load a bin file into ``bins``: each tag at its address (updated when it moved). With
    ``replace`` the file is the whole inventory: tags it does not list are removed. The caller
    commits; lifts already stored keep their street until ``trivue streets rematch``."""
    report = BinImport()
    error = _Errors(report)
    wanted = _wanted(path, report, error)
    now = datetime.now(UTC)
    items = list(wanted.items())
    for start in range(0, len(items), BATCH):  # in batches: an inventory holds a whole métropole's bins
        chunk = items[start:start + BATCH]
        address_of = _addresses(session, {key for _, (_, key) in chunk})
        known = dict(session.execute(select(Bin.tag, Bin.address_id)
                                     .where(Bin.tag.in_([tag for tag, _ in chunk]))).all())
        added, moved = [], []
        for tag, (line, key) in chunk:
            address_id = address_of.get(key)
            if address_id is None:
                report.unknown_address += 1
                error("unknown", line, f"tag {tag!r}: address {key!r} is not among the imported addresses")
            elif tag not in known:
                added.append({"tag": tag, "address_id": address_id, "imported_at": now})
            elif known[tag] != address_id:
                moved.append({"tag": tag, "address_id": address_id, "imported_at": now})
            else:
                report.unchanged += 1
        if added:
            session.execute(insert(Bin), added)
        if moved:
            session.execute(update(Bin), moved)  # by primary key
        report.added += len(added)
        report.moved += len(moved)
    if replace:
        tags = list(session.scalars(select(Bin.tag)))
        report.registered = len(tags) - report.added
        stale = [tag for tag in tags if tag not in wanted]
        for start in range(0, len(stale), BATCH):
            session.execute(delete(Bin).where(Bin.tag.in_(stale[start:start + BATCH])))
        report.removed = len(stale)
    return report


def replace_refusal(report: BinImport, allow_removals: bool) -> str | None:
    """Why a ``replace`` import must be rolled back, or None. A file that keeps no bin, or that
    removes more than half of those registered, is a cut-off export or the wrong file far more
    often than a real inventory: committing it would unplace every tagged lift of those bins."""
    if not report.removed:
        return None
    if not (report.added or report.moved or report.unchanged):
        # Never allowed, even with allow_removals: emptying the registry is not an inventory update.
        return (f"--replace with a file that keeps no bin ({report.rows} rows) would remove "
                f"{report.removed} registered bins and import none; nothing changed")
    if report.removed * 2 > report.registered and not allow_removals:
        return (f"--replace would remove {report.removed} of the {report.registered} registered bins "
                f"(more than half: a cut-off export?); nothing changed: if the file is the whole "
                f"inventory, run again with --allow-removals")
    return None


def bin_places(session: Session, tags: Collection[str]) -> dict[str, BinPlace]:
    """The place of each registered tag among ``tags`` whose address is on a street (what ingest
    asks once per batch: one indexed query)."""
    if not tags:
        return {}
    rows = session.execute(
        select(Bin.tag, Address.street_id, Address.id, Address.lat, Address.lon)
        .join(Address, Bin.address_id == Address.id)
        .where(Bin.tag.in_(sorted(tags)), Address.street_id.is_not(None)))
    return {tag: BinPlace(street_id, address_id, lat, lon) for tag, street_id, address_id, lat, lon in rows}


def bin_counts(session: Session) -> tuple[int, int]:
    """(bins registered, of which placed on a street): what ``trivue bins stats`` shows."""
    total = session.scalar(select(func.count()).select_from(Bin)) or 0
    placed = session.scalar(select(func.count()).select_from(Bin).join(Address, Bin.address_id == Address.id)
                            .where(Address.street_id.is_not(None))) or 0
    return int(total), int(placed)
