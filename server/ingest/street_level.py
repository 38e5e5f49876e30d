"""Street level at ingest: what a lift keeps while the household level is off (docs/privacy.md §1 bis).

The bin's RFID tag and the matched address point at one household; street figures, the map and
the data-quality page need neither. While ``household_level`` is off they are not written: at
insertion (``server.ingest.inbox``), when a truck's path settles its provisional lifts and at a
rematch (``server.ingest.tracks``). The street stays, and ``registry_placed`` says whether the
bin registry chose it (a rematch keeps such a lift there, with no tag to read again). The fix is
kept: trajectory matching, a rematch after a street import and the data-quality page need it.

Lifts stored before (before this version, or while the household level was on) keep their tag and
address until the retention purge's next pass at street level drops them (``clear_stored``, hourly
and at start-up), or a rematch.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.ingest.models import HOUSEHOLD_WHERE
from server.ingest.partitions import leaves

HOUSEHOLD_COLUMNS = ("bin_id", "address_id", "address_distance_m")
# ``street_level`` in SQL: the match confidence becomes the street's, so the data-quality tenths
# (``COALESCE(street_confidence, match_confidence)`` of matched lifts) do not move.
_CLEAR = ("UPDATE {table} SET bin_id = NULL, address_id = NULL, address_distance_m = NULL, match_confidence = "
          "CASE WHEN street_id IS NULL THEN NULL ELSE COALESCE(street_confidence, match_confidence) END "
          "WHERE id IN (SELECT id FROM {table} WHERE " + HOUSEHOLD_WHERE + " LIMIT :limit)")


def street_level(values: MutableMapping[str, Any]) -> None:
    """Drop the tag and the address from a lift's row or update values, in place; its match
    confidence becomes its street's (it was the address's, ``server.ingest.aggregates.MatchColumns``)."""
    for column in HOUSEHOLD_COLUMNS:
        values[column] = None
    if values.get("street_id") is None:
        values["match_confidence"] = None
    elif values.get("street_confidence") is not None:
        values["match_confidence"] = values["street_confidence"]


def clear_stored(session: Session, limit: int) -> int:
    """Drop the tag and address of at most ``limit`` stored lifts, as ``street_level`` does at
    ingest; returns how many. Street, ``registry_placed``, fix and every aggregate stay.

    One UPDATE through the partial index ``ix_lifts_household`` (an empty one once done, so a pass
    then costs a probe), one per partition on PostgreSQL, each reading its own index and none
    looking up the others' ids. The caller commits; the lifts left over go at the next call."""
    done = 0
    for table in leaves(session):
        if done >= limit:
            break
        done += session.execute(text(_CLEAR.format(table=table)), {"limit": limit - done}).rowcount or 0
    return done
