"""The collectivité's clock: today and the local day of a moment in the server's ``timezone``.

A server (or a container) often runs in UTC; ``date.today()`` would then change day at 01:00 or
02:00 Paris time, and a letter printed at 00:30 would carry yesterday's date. Collection days,
letters, reports and pages all use the configured zone instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def local_today(zone: ZoneInfo, now: datetime | None = None) -> date:
    """Today in ``zone`` (``now`` for tests; the current time otherwise)."""
    return (now or datetime.now(UTC)).astimezone(zone).date()


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The local calendar day of an aware moment (a lift's collection day, a letter's date)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime")
    return moment.astimezone(zone).date()
