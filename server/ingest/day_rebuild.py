"""Move the stored collection days to another time zone: ``trivue aggregates rebuild --timezone``.

Every raw lift gets its local day in the new zone again, then ``street_days``, ``street_day_errors``,
the match-quality days and the day/month/year roll-ups are recomputed from the lifts
(``rebuild_aggregates``), in the caller's one transaction; the database then records the new zone
(``server.ingest.day_zone``).

Days whose raw lifts retention has purged cannot be moved: their aggregates are all that is left,
kept in the old zone. The oldest day that still has lifts usually lost its first ones (the purge
cuts at an instant, not at a local midnight): when its stored total counts more lifts than are
left, it is kept as it is too, with the lifts left in it. The first day moved, K, then begins at
midnight in the old zone, where the kept days end, and ends at midnight in the new zone: every
lift is counted once, on one day, and the record (``timezone_kept``) says which days keep which
zone. Without kept days every day is recomputed, and the figures equal an ingest in the new zone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.ingest.aggregates import rebuild_aggregates
from server.ingest.day_zone import ZONE as ZONE_SETTING
from server.ingest.day_zone import KeptDays, kept_days, record_kept, stored_zone, write_setting
from server.ingest.models import Lift, StreetDay
from server.localtime import local_day

log = logging.getLogger(__name__)

CHUNK = 5000
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DayRebuild:
    """What a rebuild did: lifts read and moved to another day, and the days it had to leave."""

    old_zone: str
    new_zone: str
    lifts: int
    moved: int
    kept: KeptDays | None  # aggregated days before kept.before keep kept.zone (raw lifts purged)
    kept_days: int  # how many such days hold aggregates


def _first_moved_day(session: Session) -> tuple[date | None, bool]:
    """(K, whether days before K hold aggregates): K is the first day whose raw lifts, and every
    later day's, are all still stored; None when no lift is stored."""
    first = session.scalar(select(func.min(Lift.day)))
    if first is None:
        last = session.scalar(select(func.max(StreetDay.day)))
        return (None, False) if last is None else (last + timedelta(days=1), True)
    counted = session.scalar(select(func.coalesce(func.sum(StreetDay.lifts), 0)).where(StreetDay.day == first))
    left = session.scalar(select(func.count()).select_from(Lift).where(Lift.day == first))
    start = first if counted == left else first + timedelta(days=1)  # a purge cut into the first day
    older = session.scalar(select(StreetDay.day).where(StreetDay.day < start).limit(1)) is not None
    return start, older


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone)


def _relabel(
    session: Session, zone: ZoneInfo, since: datetime | None, floor: date | None, progress: Progress | None
) -> tuple[int, int]:
    """Set ``lifts.day`` in ``zone`` for the lifts started at or after ``since`` (all when None), never
    before ``floor``; returns (lifts read, lifts moved)."""
    where = [Lift.started_at >= since] if since is not None else []
    total = session.scalar(select(func.count()).select_from(Lift).where(*where)) or 0
    done = moved = 0
    last: tuple[datetime, int] | None = None
    while True:
        query = select(Lift.id, Lift.started_at, Lift.day).where(*where).order_by(Lift.started_at, Lift.id)
        if last is not None:  # keyset pagination on (started_at, id), as the rematch reads lifts
            query = query.where((Lift.started_at > last[0]) | ((Lift.started_at == last[0]) & (Lift.id > last[1])))
        rows = session.execute(query.limit(CHUNK)).all()
        if not rows:
            return done, moved
        changes = []
        for lift_id, started_at, day in rows:
            new = local_day(started_at, zone)
            new = max(new, floor) if floor is not None else new
            if new != day:
                changes.append({"id": lift_id, "day": new})
        if changes:
            session.execute(update(Lift), changes)
        moved += len(changes)
        done += len(rows)
        last = (rows[-1][1], rows[-1][0])
        if progress is not None:
            progress(done, total)


def rebuild_days(session: Session, new_zone: str, progress: Progress | None = None) -> DayRebuild:
    """Recompute the stored days in ``new_zone`` and record it; the caller commits (one transaction)."""
    old_zone = stored_zone(session) or new_zone  # no record (before 0014): the days are recomputed all the same
    start, older = _first_moved_day(session)
    zone = ZoneInfo(new_zone)
    kept = None
    if start is None:  # nothing stored at all
        lifts = moved = 0
    elif not older:  # every stored day has its raw lifts: all of them recomputed
        lifts, moved = _relabel(session, zone, None, None, progress)
        rebuild_aggregates(session)
    else:
        lifts, moved = _relabel(session, zone, _midnight(start, ZoneInfo(old_zone)), start, progress)
        if lifts:
            rebuild_aggregates(session, since=start)
        kept = KeptDays(start, old_zone)
    days = 0
    if kept is not None and old_zone != new_zone:
        days = session.scalar(select(func.count(func.distinct(StreetDay.day))).where(StreetDay.day < start)) or 0
        record_kept(session, [*kept_days(session), kept])
    elif kept is not None:
        kept = None  # recomputed in the zone they were already in: nothing left behind
    write_setting(session, ZONE_SETTING, new_zone)
    log.info(
        "collection days rebuilt in %s (were %s): %d lifts read, %d moved to another day%s",
        new_zone,
        old_zone,
        lifts,
        moved,
        f"; {days} days before {kept.before} keep {kept.zone}" if kept else "",
    )
    return DayRebuild(old_zone, new_zone, lifts, moved, kept, days)
