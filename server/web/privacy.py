"""The household-level switch (``household_level`` in the server settings, off by default).

Privacy by design (GDPR art. 25, the CNIL's guidance for waste-sorting cameras): until an admin
enables it, Trivue works at street level. Addresses, RFID bin tags, GPS fixes and household keys
leave no API route, page or export; household reminders, their letters and the contacts are
refused with a French message saying who can change that. Ingest does not store the bin tag or
the address while it is off (``server.ingest.street_level``); the GPS fix is stored and hidden here,
as are the tags and addresses of lifts stored at household level (until a street-level rematch).

Evidence photos are not household-level by themselves: they show the inside of the hopper,
blurred outside it on the truck, under a random event id; without the address or bin tag they
name no one. Managers keep them while the switch is off (reviewing detections needs them).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from server.config import ServerSettings

# What a manager reads when they reach for household data while the switch is off.
OFF_MESSAGE = ("Les données au niveau du foyer (adresses, bacs, contacts, rappels adressés à un foyer) sont "
               "désactivées : Trivue travaille au niveau de la rue. Un administrateur doit activer le niveau "
               "foyer (réglage household_level: true ou TRIVUE_HOUSEHOLD_LEVEL=true du serveur, puis "
               "redémarrage), après la délibération et l'analyse d'impact (AIPD) de la collectivité.")
# Printed files a campaign may hold; only street notices and thank-you notices name no household.
STREET_LEVEL_FILES = ("avis-", "remerciement-")


class HouseholdLevelOff(PermissionError):
    """Household-level data asked for while the switch is off; the message is ``OFF_MESSAGE``."""

    def __init__(self, what: str = "") -> None:
        super().__init__(f"{what} : {OFF_MESSAGE}" if what else OFF_MESSAGE)


def enabled(settings: ServerSettings) -> bool:
    return settings.household_level


def refusal(what: str) -> HTTPException:
    """409, not 403: the caller's role is right, the server's configuration says no."""
    return HTTPException(status.HTTP_409_CONFLICT, str(HouseholdLevelOff(what)))


def require(settings: ServerSettings, what: str) -> None:
    if not settings.household_level:
        raise refusal(what)


def street_level_lift(lift: dict[str, Any]) -> dict[str, Any]:
    """A lift as ``server.drilldown.lift_json`` gives it, without what points at one household:
    the bin tag, the address and the GPS fix (a few metres: one front door)."""
    return {**lift, "bin_id": None, "address": None, "gps": None}


def street_level_effect(report: dict[str, Any]) -> dict[str, Any]:
    """A campaign's effect (``server.effect.measure``) without its per-household rows, whose unit is a
    household key; the households' pooled figures name no one and stay."""
    return {**report, "units": [u for u in report.get("units", []) if u.get("group") != "household"]}
