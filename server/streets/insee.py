"""Communes as French public data names them: the code INSEE (code officiel géographique).

A commune name is ambiguous (Saint-Denis is in Seine-Saint-Denis and in La Réunion; a *commune
nouvelle* and its *communes déléguées* are told apart by name only loosely), so data.gouv.fr and
the collectivités' schemas identify a commune by its code: ``35238`` Rennes, ``2A004`` Ajaccio,
``97411`` Saint-Denis (La Réunion). Trivue stores a street's code only when real data says it,
never from its name:

1. the BAN addresses linked to the street, counting only those of the street's own commune (a
   way drawn across a border also gets the neighbour's addresses of its name): the code most of
   them carry, none on a tie;
2. else what its import said: ``trivue streets import --insee`` or the ``ref:INSEE`` tag of the
   OSM commune boundary holding the way.

Plain Python (the OSM reader uses it); the counting is ``server.streets.addresses.refresh_street_codes``.
"""

from __future__ import annotations

import re

CODE_INSEE = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{3}")
RULE = "a code INSEE is 5 characters: 2 digits (2A or 2B in Corsica) then 3 digits, e.g. 35238"


def code_insee(value: str) -> str | None:
    """``value`` as the COG writes it (upper case), or None when it is not a code INSEE."""
    code = value.strip().upper()
    return code if CODE_INSEE.fullmatch(code) else None
