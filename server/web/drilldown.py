"""Raw lifts for drill-down: filtered, newest first, paginated by an opaque keyset cursor.

Household-level data (bin, exact position, address, photo): only managers and admins reach it,
and every read of a single lift is written to the audit log by the route.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from server.ingest.models import Evidence, Lift
from server.streets.models import Address, Street
from server.web.bounds import MAX_ROW_ID
from server.web.commune_scope import scoped_streets

ONE_DAY = timedelta(days=1)


class CursorError(ValueError):
    pass


def encode_cursor(lift: Lift) -> str:
    raw = f"{lift.started_at.isoformat()}|{lift.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    invalid = CursorError(f"invalid cursor {cursor[:40]!r}: pass next_cursor from the previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, lift_id = raw.partition("|")
        at, row = datetime.fromisoformat(when), int(lift_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    # ``encode_cursor`` writes an aware time and a row id: a forged one compared naive with aware
    # times, or bound a number past 64 bits, and answered 500
    if at.tzinfo is None or not 1 <= row <= MAX_ROW_ID:
        raise invalid
    return at, row


@dataclass(frozen=True, slots=True)
class LiftFilter:
    street_id: int | None = None
    truck_id: str | None = None
    contaminated: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    # The street page's photos follow its period and stream: local collection days, both
    # included, as ``/api/streets`` reads them (``since``/``until`` above are UTC instants).
    stream: str | None = None
    day_since: date | None = None
    day_until: date | None = None
    # A scoped account's codes INSEE (``server.web.commune_scope``): its communes' streets' lifts only.
    communes: tuple[str, ...] | None = None

    def conditions(self) -> list[Any]:
        found = []
        for column, value in ((Lift.street_id, self.street_id), (Lift.truck_id, self.truck_id),
                              (Lift.contaminated, self.contaminated), (Lift.stream, self.stream)):
            if value is not None:
                found.append(column == value)
        if self.communes is not None:
            found.append(Lift.street_id.in_(scoped_streets(self.communes)))
        if self.since is not None:
            found.append(Lift.started_at >= self.since)
        if self.until is not None:
            found.append(Lift.started_at < self.until)
        # Local days bound ``started_at`` too, a day wider on each side (a local day lies within a
        # day of its UTC date in any zone; ``day`` decides): the lifts come newest first through the
        # ``started_at`` indexes, and by ``day`` alone SQLite walked a truck's lifts from today back
        # to the period's (three years: 5.2 s for a truck's January).
        if self.day_since is not None:
            found += [Lift.day >= self.day_since, Lift.started_at >= _utc_midnight(self.day_since - ONE_DAY)]
        if self.day_until is not None:
            found += [Lift.day <= self.day_until, Lift.started_at < _utc_midnight(self.day_until + 2 * ONE_DAY)]
        return found


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _names(session: Session, lifts: list[Lift]) -> tuple[dict[int, Any], dict[int, Any]]:
    if not lifts:
        return {}, {}
    street_ids = {lift.street_id for lift in lifts if lift.street_id is not None}
    address_ids = {lift.address_id for lift in lifts if lift.address_id is not None}
    streets = {s.id: s for s in session.scalars(select(Street).where(Street.id.in_(street_ids)))}
    addresses = {a.id: a for a in session.scalars(select(Address).where(Address.id.in_(address_ids)))}
    return streets, addresses


def lift_json(lift: Lift, street: Any, address: Any, photo: Evidence | None) -> dict[str, Any]:
    gps = None if lift.lat is None else {"lat": lift.lat, "lon": lift.lon, "accuracy_m": lift.accuracy_m,
                                          "heading_deg": lift.heading_deg}
    return {
        "event_id": lift.event_id, "truck_id": lift.truck_id, "sequence": lift.sequence, "stream": lift.stream,
        "started_at": lift.started_at.isoformat(), "ended_at": lift.ended_at.isoformat(),
        "day": lift.day.isoformat(), "received_at": lift.received_at.isoformat(),
        "contaminated": lift.contaminated, "has_alert": lift.has_alert, "score": lift.score,
        "counts": lift.counts, "errors": lift.errors, "frames": lift.frames, "bin_id": lift.bin_id,
        "model": {"name": lift.model_name, "version": lift.model_version, "sha256": lift.model_sha256}, "gps": gps,
        "street": None if lift.street_id is None else {
            "street_id": lift.street_id, "name": getattr(street, "name", None),
            "commune": getattr(street, "commune", None), "segment_id": lift.segment_id,
            "distance_m": lift.street_distance_m, "confidence": lift.match_confidence},
        "address": None if lift.address_id is None else {
            "address_id": lift.address_id, "label": getattr(address, "label", None),
            "distance_m": lift.address_distance_m},
        "evidence": None if photo is None else {
            "url": f"/api/lifts/{lift.event_id}/evidence.jpg", "width": photo.width, "height": photo.height,
            "sha256": photo.sha256, "size_bytes": photo.size_bytes,
            # Wire 1.1 photos carry no drawn boxes: the page draws these over the photo.
            "reason": lift.evidence_reason, "boxes": lift.evidence_detections or []},
        "evidence_expected": lift.evidence_sha256 is not None,
        # A person judged the truck wrong: the fields above stay the truck's, the figures count it clean.
        "overruled": None if lift.overruled_at is None else {
            "at": lift.overruled_at.isoformat(), "by": lift.overruled_by, "reason": lift.overrule_reason},
        # The camera saw nothing usable (wire 1.4): the fields above stay the truck's, no figure counts it.
        "view_unusable": lift.view_unusable,
    }


def list_lifts(session: Session, flt: LiftFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of lifts, newest first; ``next_cursor`` is None on the last page."""
    query = select(Lift).where(*flt.conditions()).order_by(Lift.started_at.desc(), Lift.id.desc())
    if cursor:
        when, lift_id = decode_cursor(cursor)
        query = query.where(or_(Lift.started_at < when, and_(Lift.started_at == when, Lift.id < lift_id)))
    lifts = list(session.scalars(query.limit(limit + 1)))
    page = lifts[:limit]
    streets, addresses = _names(session, page)
    photos = {e.event_id: e for e in session.scalars(
        select(Evidence).where(Evidence.event_id.in_([lift.event_id for lift in page])))} if page else {}
    items = [lift_json(lift, streets.get(lift.street_id), addresses.get(lift.address_id),
                       photos.get(lift.event_id)) for lift in page]
    return {"items": items, "next_cursor": encode_cursor(page[-1]) if len(lifts) > limit else None}


def lift_detail(session: Session, event_id: str) -> dict[str, Any] | None:
    lift = session.scalar(select(Lift).where(Lift.event_id == event_id))
    if lift is None:
        return None
    streets, addresses = _names(session, [lift])
    return lift_json(lift, streets.get(lift.street_id), addresses.get(lift.address_id),
                     session.get(Evidence, event_id))
