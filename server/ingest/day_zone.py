"""The time zone the stored collection days were computed in, recorded in the database itself.

Lifts are counted on *local* days of the server's ``timezone`` (``lifts.day``, ``street_days`` and
the day/month/year roll-ups). A zone changed in the settings (a deployment in La Réunion started
with the default Europe/Paris and fixed later) left the stored days in the old zone while new
lifts used the new one: lifts near midnight landed on the wrong day and months mixed two zones,
without a word. The database therefore records its days' zone (``database_settings``), and the
server and the commands that write aggregates refuse to start on a mismatch, naming the command
that moves the days (``trivue aggregates rebuild``, ``server.ingest.day_rebuild``).

A database without the record (new, or upgraded from before migration 0014) gets the configured
zone at its first start: for an upgraded one that is a guess, the zone the operator runs with at
upgrade time, and the log says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import ConfigError
from server.db import utcnow
from server.ingest.aggregates import dialect_insert
from server.ingest.models import DatabaseSetting, Lift, StreetDay

log = logging.getLogger(__name__)

ZONE = "timezone"
# Days a rebuild could not move (their raw lifts purged by retention): a JSON list of
# {"before": "YYYY-MM-DD", "zone": "..."}, each saying that the aggregated days before ``before``
# were computed in ``zone``; the day ``before`` itself then runs from midnight in that zone to
# midnight in the next one (``server.ingest.day_rebuild``).
KEPT = "timezone_kept"


class DayZoneMismatch(ConfigError):
    """The settings' ``timezone`` is not the zone of the stored collection days."""


@dataclass(frozen=True, slots=True)
class KeptDays:
    """Aggregated days before ``before`` stay in ``zone``: their raw lifts were gone at the rebuild."""

    before: date
    zone: str


def read_setting(session: Session, name: str) -> str | None:
    return session.scalar(select(DatabaseSetting.value).where(DatabaseSetting.name == name))


def write_setting(session: Session, name: str, value: str) -> None:
    """Set ``name``; the caller commits."""
    row = session.get(DatabaseSetting, name)
    if row is None:
        session.add(DatabaseSetting(name=name, value=value, changed_at=utcnow()))
    else:
        row.value, row.changed_at = value, utcnow()
    session.flush()


def stored_zone(session: Session) -> str | None:
    """The zone of the stored days; None before the first start after migration 0014."""
    return read_setting(session, ZONE)


def kept_days(session: Session) -> list[KeptDays]:
    """The spans of days left in an older zone by rebuilds, oldest first."""
    value = read_setting(session, KEPT)
    return [KeptDays(date.fromisoformat(item["before"]), item["zone"]) for item in json.loads(value or "[]")]


def record_kept(session: Session, kept: list[KeptDays]) -> None:
    write_setting(session, KEPT, json.dumps([{"before": k.before.isoformat(), "zone": k.zone} for k in kept]))


def rebuild_command(zone: str) -> str:
    return f"trivue aggregates rebuild --timezone {zone}"


def settle_day_zone(session: Session, configured: str) -> None:
    """At start-up: record ``configured`` when the database has no zone yet, or raise
    ``DayZoneMismatch`` when its days are in another zone. Commits the record it makes."""
    stored = stored_zone(session)
    if stored is None:
        upgraded = (
            session.scalar(select(Lift.id).limit(1)) is not None
            or session.scalar(select(StreetDay.day).limit(1)) is not None
        )
        # Two processes starting together both see no row: the second one's insert does nothing.
        session.execute(
            dialect_insert(session, DatabaseSetting.__table__)
            .values(name=ZONE, value=configured, changed_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        session.commit()
        stored = stored_zone(session) or configured
        if upgraded and stored == configured:
            log.warning(
                "timezone: the database records no zone for its collection days (written before "
                "this version); recorded %s, the configured one. If its days were computed in "
                "another zone, run `%s` to recompute them.",
                configured,
                rebuild_command(configured),
            )
    if stored != configured:
        raise DayZoneMismatch(
            f"timezone: the settings say {configured!r} but the collection days stored in the database were "
            f"computed in {stored!r}; new lifts would be counted on days of another zone. Either set timezone "
            f"back to {stored!r}, or stop every server process and recompute the stored days in {configured!r} "
            f"with: {rebuild_command(configured)} (with the server's --config)"
        )
