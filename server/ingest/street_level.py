"""Street level at ingest: what a lift keeps while the household level is off (docs/privacy.md §1 bis).

The bin's RFID tag and the matched address point at one household; street figures, the map and
the data-quality page need neither. While ``household_level`` is off they are not written: at
insertion (``server.ingest.inbox``), when a truck's path settles its provisional lifts and at a
rematch (``server.ingest.tracks``). The street stays, and ``registry_placed`` says whether the
bin registry chose it (a rematch keeps such a lift there, with no tag to read again). The fix is
kept: trajectory matching, a rematch after a street import and the data-quality page need it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

HOUSEHOLD_COLUMNS = ("bin_id", "address_id", "address_distance_m")


def street_level(values: MutableMapping[str, Any]) -> None:
    """Drop the tag and the address from a lift's row or update values, in place; its match
    confidence becomes its street's (it was the address's, ``server.ingest.aggregates.MatchColumns``)."""
    for column in HOUSEHOLD_COLUMNS:
        values[column] = None
    if values.get("street_id") is None:
        values["match_confidence"] = None
    elif values.get("street_confidence") is not None:
        values["match_confidence"] = values["street_confidence"]
