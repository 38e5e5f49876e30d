"""Id patterns shared by the wire contract, the truck's settings, the ingest and the API.

A truck id names MQTT topics and folders, so it needs at least one letter or digit (never ``..``).
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 64
# Event ids, bin ids, model names: letters, digits, ``_``, ``.``, ``-``.
ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
TRUCK_ID_PATTERN = r"^[A-Za-z0-9_.-]*[A-Za-z0-9][A-Za-z0-9_.-]*$"
_TRUCK_ID = re.compile(TRUCK_ID_PATTERN)


def is_truck_id(value: str) -> bool:
    """True when ``value`` is a truck id the whole system accepts (pattern and length)."""
    return len(value) <= ID_MAX_LENGTH and _TRUCK_ID.fullmatch(value) is not None
