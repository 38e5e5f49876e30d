"""The mail room's print run: a campaign's letters as one PDF, in the order the mail goes out.

Sending a campaign writes one PDF per household letter (``courrier-campagne-<c>-<item>.pdf``). A mail
room printing 800 of them wants one file and a count: the letters sorted by commune, postcode, street
and house number (a commune's letters together for franking and bundling, a street's in number order
for a hand delivery), how many letters, pages and sheets, and how many per commune. The file is
joined as it is written (``server.reminders.mailroom.print_file``), so its memory does not grow
with the campaign.

What goes in: the campaign's household items sent by letter whose file is still there. Left out, and
said so: a household that opted out after its letter was written (the letter is not in the post yet:
its opposition is honoured), a household whose data were erased or expired (its file is gone, its
item no longer names it), a missing or unreadable file. The order uses the address as the contacts
and the address register hold it now (the letter printed the one of its send day).

A letter put in a print file is marked printed (who, when: its first print; every print audited as
``reminders.letters.printed``), once the whole file is made (``PrintRun.in_file``: a letter skipped
meanwhile is not). ``only_new`` makes the file of the letters never printed, for the letters a
campaign's later sends (retries, contacts imported since) added; without it the file holds them all
again, and the count says how many were printed before.

Counting opens every letter's PDF (about 0.8 ms each: 4 s for 5,000 letters on a 2-core machine),
and the page counts twice at each look and again after a download: a letter's page count is kept
per file, size and modification time, so a file rewritten (a retry, a photo purge) is read again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.reminders.letter_files import letter_name
from server.reminders.mailroom.print_file import PdfJoiner
from server.reminders.models import HOUSEHOLD, SENT, Channel, Contact, Item, OptOut
from server.reminders.postal import AddressError, SortingKey, sorting_key
from server.streets.models import Address

log = logging.getLogger(__name__)

ORDER = "commune, code postal, rue, numéro"
CHUNK = 500  # keys per IN (…) query: far below SQLite's and PostgreSQL's limits
NO_POSTCODE = SortingKey("", "", "", 0, 0, "")  # an address without postcode and commune: printed last


@dataclass(frozen=True, slots=True)
class PrintLetter:
    item_id: int
    path: Path
    place: SortingKey
    pages: int


@dataclass(slots=True)
class PrintRun:
    campaign_id: int
    letters: list[PrintLetter] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "élément 12 : opposition du foyer"
    recto_verso: bool = True
    only_new: bool = False  # the letters never put in a print file before, only
    already_printed: int = 0  # the campaign's letters put in an earlier print file (in this one too unless only_new)
    in_file: list[int] = field(default_factory=list)  # the items whose letter ``pdf`` put in the file, so far

    @property
    def pages(self) -> int:
        return sum(letter.pages for letter in self.letters)

    @property
    def blank_pages(self) -> int:
        """Blank backs added so that each letter starts on a new sheet when printed on both sides."""
        return sum(letter.pages % 2 for letter in self.letters) if self.recto_verso else 0

    @property
    def sheets(self) -> int:
        pages = self.pages + self.blank_pages
        return pages // 2 if self.recto_verso else pages

    @property
    def file_name(self) -> str:
        return f"courriers-campagne-{self.campaign_id}.pdf"

    def communes(self) -> list[dict[str, Any]]:
        """Letters per postcode and commune, in the file's order, with the position of the first."""
        groups: list[dict[str, Any]] = []
        for position, letter in enumerate(self.letters, 1):
            postcode, commune = letter.place.postcode, letter.place.commune
            if not groups or (groups[-1]["postcode"], groups[-1]["commune"]) != (postcode, commune):
                groups.append({"postcode": postcode, "commune": commune, "letters": 0, "first": position})
            groups[-1]["letters"] += 1
        return groups

    def summary(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "file": self.file_name, "letters": len(self.letters),
                "pages": self.pages, "blank_pages": self.blank_pages, "sheets": self.sheets,
                "recto_verso": self.recto_verso, "order": ORDER, "communes": self.communes(),
                "left_out": self.left_out, "only_new": self.only_new, "already_printed": self.already_printed}

    def pdf(self, progress: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
        """The print file in pieces, one a letter. A letter whose file was deleted meanwhile (an
        erasure at that moment) is skipped: its household must not get it."""
        joiner = PdfJoiner(f"Courriers de la campagne {self.campaign_id} ({ORDER})", self.recto_verso)
        self.in_file = []
        yield joiner.start()
        for done, letter in enumerate(self.letters, 1):
            try:
                piece = joiner.add(letter.path)[0]
                self.in_file.append(letter.item_id)
                yield piece
            except FileNotFoundError:
                log.warning("print run of campaign %s: letter of item %s deleted meanwhile, left out",
                            self.campaign_id, letter.item_id)
            if progress is not None:
                progress(done, len(self.letters))
        yield joiner.finish()


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _addresses(session: Session, items: list[Item]) -> dict[int, str]:
    """Each item's postal address as its letter is addressed: the contact's, else the register's."""
    keys = sorted({i.target_key for i in items})
    contacts: dict[str, str] = {}
    for part in _chunks(keys):
        contacts.update(session.execute(select(Contact.key, Contact.postal_address).where(
            Contact.key.in_(part), Contact.postal_address.is_not(None))).tuples().all())
    ids = sorted({i.address_id for i in items if i.address_id is not None})
    labels: dict[int, str] = {}
    for part in _chunks(ids):
        labels.update(session.execute(select(Address.id, Address.label).where(Address.id.in_(part))).tuples().all())
    return {i.id: contacts.get(i.target_key) or labels.get(i.address_id or -1, "") for i in items}


def mark_printed(session: Session, run: PrintRun, actor: str) -> int:
    """The run's print file is made and handed to the mail room: each letter it holds (``in_file``,
    not one skipped meanwhile) never printed before gets who and when (its first print), and the
    print is audited with how many were reprints; the number newly marked. The caller commits, once
    the whole file is written or sent: a broken one marks nothing."""
    ids = list(run.in_file)
    marked = 0
    for part in _chunks(ids):
        marked += session.execute(update(Item).where(Item.id.in_(part), Item.printed_at.is_(None))
                                  .values(printed_at=utcnow(), printed_by=actor)
                                  .execution_options(synchronize_session=False)).rowcount or 0
    audit(session, actor, "reminders.letters.printed", f"campaign:{run.campaign_id}",
          f"{len(ids)} letters, {marked} first printed, {len(ids) - marked} reprinted")
    return marked


def _file(folder: Path, item: Item) -> Path | None:
    """The letter's file: where the send wrote it (``send_detail``), else under the campaign's folder
    (a relative ``data_dir`` seen from another directory); only a file of the letter's own name."""
    name = letter_name(item.campaign_id, item.id)
    written = Path(item.send_detail or "")
    for path in (written, folder / name):
        if path.name == name and path.is_file():
            return path
    return None


def _pages(path: Path) -> int | None:
    """The letter's page count, None when unreadable; read once per file, size and modification time."""
    try:
        seen = path.stat()
        return _counted(str(path), seen.st_size, seen.st_mtime_ns)
    except OSError:  # not kept: a file missing or busy now may be there at the next count
        return None


@lru_cache(maxsize=65536)  # a métropole's few campaigns of 5,000 letters: an int a file
def _counted(path: str, size: int, mtime_ns: int) -> int | None:
    """The page tree's /Count (no page is parsed). ``size`` and ``mtime_ns`` are the cache's key:
    a rewritten letter is counted again; the joiner counts the pages it copies itself in any case."""
    with open(path, "rb") as stream:
        try:
            return len(PdfReader(stream).pages)
        except (PyPdfError, ValueError, KeyError):
            return None


def print_run(session: Session, campaign_id: int, folder: Path, recto_verso: bool = True,
              only_new: bool = False) -> PrintRun:
    """The campaign's letters to print, in distribution order; ``folder``: the campaign's own.
    ``only_new``: leave out the letters already put in a print file (``mark_printed``)."""
    run = PrintRun(campaign_id, recto_verso=recto_verso, only_new=only_new)
    items = list(session.scalars(select(Item).where(
        Item.campaign_id == campaign_id, Item.kind == HOUSEHOLD, Item.status == SENT,
        Item.channel == Channel.letter).order_by(Item.id)))
    keys = sorted({i.target_key for i in items})
    opposed: set[str] = set()
    for part in _chunks(keys):
        opposed.update(session.scalars(select(OptOut.key).where(OptOut.key.in_(part))))
    addresses = _addresses(session, items)
    for item in items:
        if item.send_detail is None or not item.target_key.startswith(("address:", "bin:")):
            run.left_out.append(f"élément {item.id} : données du foyer effacées")
            continue
        if item.target_key in opposed:
            run.left_out.append(f"élément {item.id} : opposition du foyer")
            continue
        if item.printed_at is not None:
            run.already_printed += 1
            if only_new:  # counted, not listed: a campaign's second print would list hundreds
                continue
        path = _file(folder, item)
        pages = _pages(path) if path is not None else None
        if path is None or not pages:
            problem = "introuvable" if path is None else "illisible"
            run.left_out.append(f"élément {item.id} : fichier du courrier {problem}")
            continue
        try:
            place = sorting_key(addresses[item.id])
        except AddressError:
            place = NO_POSTCODE
        run.letters.append(PrintLetter(item.id, path, place, pages))
    run.letters.sort(key=lambda letter: (letter.place == NO_POSTCODE, letter.place, letter.item_id))
    return run
