"""Dead letters that name a household: shown by its right of access, emptied by its erasure.

A refused lift's letter (``server.ingest.letters``) keeps the message's first 4 KiB, or all of it
while a replay can still store it: the lift's time, GPS fix and bin tag; the letter of its photo
keeps the photo. Nothing of a refused message was matched to a street or an address, so what ties
a letter to a household is the bin tag in its payload: for ``bin:<tag>`` that tag, for
``address:<id>`` the tags the bin registry places at the address. A letter without a tag (or with a
tag the registry places elsewhere, or nowhere) is not found from an address: placing it by its
GPS fix would also find the neighbours' lifts, and an access export would show them. Those letters
go with the raw lifts (``retention_days``) or the dead letters' own retention.

The erasure empties the payloads of the lift's letter and of its photo's (topic
``<prefix>/<truck>/evidence/<event_id>``): the letter stays, reason, detail and size (the
data-quality figures count the refusal), names no one, and cannot be replayed any more (its
payload is shorter than ``payload_size``): one lift fewer in the measurement, the household's
request first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Text, cast, func, or_, select, update
from sqlalchemy.orm import Session

from base.bin_tags import canonical_tag
from server.ingest.models import DeadLetter
from server.reminders.targets import HouseholdKey
from server.streets.models import Bin

ERASED_NOTE = " (payload erased at the household's request)"
# Read with patterns, not a JSON parser: a letter cut at 4 KiB is no JSON document any more. The
# edge writes the compact JSON of ``vision.schema.LiftEvent``; spaces are allowed anyway.
_TAG = re.compile(rb'"bin_id"\s*:\s*"([A-Za-z0-9_.-]{1,64})"')
_HEX = re.compile(r"[0-9A-F]+")  # a canonical tag (upper case) that may be a chip's byte pairs
_EVENT = re.compile(rb'"event_id"\s*:\s*"([0-9a-fA-F-]{36})"')
_STARTED = re.compile(rb'"started_at"\s*:\s*"([0-9T:.+Z-]{10,40})"')
_LAT = re.compile(rb'"lat"\s*:\s*(-?[0-9][0-9.eE+-]{0,30})')
_LON = re.compile(rb'"lon"\s*:\s*(-?[0-9][0-9.eE+-]{0,30})')


@dataclass(frozen=True, slots=True)
class NamedLetter:
    """A dead letter whose payload names one of the household's bins, and what it holds."""

    id: int
    received_at: datetime
    reason: str
    truck_id: str | None
    tag: str
    whole: bool  # the whole message (held for a replay), or its first 4 KiB
    event_id: str | None
    started_at: str | None
    gps: tuple[float, float] | None
    photo_letters: tuple[int, ...]  # letters of the lift's photo that still hold it


def household_tags(session: Session, household: HouseholdKey) -> list[str]:
    """The bin tags that name the household: its own, or those the registry places at its address."""
    if household.bin_id:
        return [household.bin_id]
    return list(session.scalars(select(Bin.tag).where(Bin.address_id == household.address_id).order_by(Bin.tag)))


def letters_naming(session: Session, household: HouseholdKey) -> list[NamedLetter]:
    """The dead letters whose payload names one of ``household``'s bins, oldest first."""
    found: list[NamedLetter] = []
    for tag in household_tags(session, household):
        rows = session.execute(select(DeadLetter.id, DeadLetter.received_at, DeadLetter.reason, DeadLetter.truck_id,
                                      DeadLetter.payload, DeadLetter.payload_size)
                               .where(or_(*(_holds(session, f'"{spelled}"'.encode()) for spelled in _spellings(tag))))
                               .order_by(DeadLetter.id))
        for row in rows:
            payload = bytes(row.payload)
            if (named := _TAG.search(payload)) is None or canonical_tag(named.group(1).decode()) != tag:
                continue
            event = _text(_EVENT, payload)
            found.append(NamedLetter(row.id, row.received_at, row.reason, row.truck_id, tag,
                                     len(payload) == row.payload_size, event, _text(_STARTED, payload),
                                     _gps(payload), _photo_letters(session, event)))
    return sorted(found, key=lambda letter: letter.id)


def forget_letters(session: Session, letters: list[NamedLetter]) -> int:
    """Empty the payloads of ``letters`` and of their photos' letters; returns how many were emptied."""
    ids = sorted({letter.id for letter in letters} | {i for letter in letters for i in letter.photo_letters})
    if not ids:
        return 0
    return session.execute(update(DeadLetter).where(DeadLetter.id.in_(ids)).values(
        payload=b"", lift_started_at=None, detail=DeadLetter.detail.concat(ERASED_NOTE),
    ).execution_options(synchronize_session=False)).rowcount or 0


def _spellings(tag: str) -> list[str]:
    """How a payload may hold the canonical ``tag``: also as its byte pairs joined by ``-`` or ``.``
    (``04-a1-b2-c3``), a valid wire tag that ``canonical_tag`` reads as this one, which the search
    for ``"04A1B2C3"``, blind to case only, would miss: an erasure would leave it named."""
    if len(tag) < 4 or len(tag) % 2 or not _HEX.fullmatch(tag):
        return [tag]
    pairs = [tag[i:i + 2] for i in range(0, len(tag), 2)]
    return [tag, "-".join(pairs), ".".join(pairs)]


def _holds(session: Session, needle: bytes) -> ColumnElement[bool]:
    """Payloads that contain ``needle`` in any letter case: an older truck sent a tag as its reader
    printed it (``"04a1b2c3"``), and it names the household ``bin:04A1B2C3`` all the same
    (``base.bin_tags``). SQLite's LIKE never matches a BLOB, PostgreSQL has no ``instr``: its
    ``bytea`` is read as escaped text, where a tag's characters stand as they are (a tag's ``_``
    matches any character, the pattern decides)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.instr(func.upper(cast(DeadLetter.payload, Text)), needle.decode().upper()) > 0
    return func.encode(DeadLetter.payload, "escape").ilike(f"%{needle.decode()}%")


def _text(pattern: re.Pattern[bytes], payload: bytes) -> str | None:
    match = pattern.search(payload)
    return match.group(1).decode("ascii") if match else None


def _gps(payload: bytes) -> tuple[float, float] | None:
    lat, lon = _text(_LAT, payload), _text(_LON, payload)
    try:
        return (float(lat), float(lon)) if lat and lon else None
    except ValueError:  # a number cut by the 4 KiB limit
        return None


def _photo_letters(session: Session, event_id: str | None) -> tuple[int, ...]:
    if event_id is None:
        return ()
    topic = func.lower(DeadLetter.topic)
    return tuple(session.scalars(select(DeadLetter.id).where(
        topic.endswith(f"/evidence/{event_id.lower()}", autoescape=True),
        func.length(DeadLetter.payload) > 0).order_by(DeadLetter.id)))
