"""What the targeting rules produce and the small pieces they are made of: targets, skips, plans,
household keys, error categories, and the names people read (streets, addresses).

``server.reminders`` holds the planner that fills these; campaigns, the API and the command read them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from base.bin_tags import canonical_tag
from server.reminders.phrases import plural
from server.reminders.templates import most_first
from server.streets.models import Address, Street
from server.web.reports import wilson
from vision.schema import Severity


@dataclass(frozen=True, slots=True)
class Target:
    """One message the rules would send, with the evidence and the reason a reviewer will read."""

    kind: str  # household, street or thanks
    level: int  # 1 information, 2 rappel, 3 visite; 0 for thanks
    action: str
    key: str  # address:<id>, bin:<rfid> or street:<id>
    street_id: int | None
    label: str  # address or street, for people
    lifts: int
    contaminated: int
    categories: dict[str, int]
    event_ids: tuple[str, ...]
    reason: str
    address_id: int | None = None
    bin_id: str | None = None
    unattributed: int | None = None  # street: contaminated lifts without a sure household (route sheet)
    unattributed_categories: dict[str, int] | None = None  # street: those lifts' errors (route sheet)
    # stream -> contaminated lifts, most first (route sheet's « Flux »): a street's, those without a sure household
    streams: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    key: str
    label: str
    reason: str
    street_id: int | None = None  # a street's plan (the street page's campaign) shows its own


@dataclass(frozen=True, slots=True)
class Plan:
    since: date
    until: date
    targets: tuple[Target, ...]
    skipped: tuple[Skip, ...]
    street_only_lifts: int  # contaminated lifts without a sure household (counted for streets)
    unmatched_lifts: int  # contaminated lifts matched to no street at all
    quiet: str | None = None  # reason of the quiet period the plan falls in
    street_only_by_street: dict[int, int] = field(default_factory=dict)  # street_only_lifts, street by street


@dataclass(slots=True)
class Unit:
    """Contaminated lifts gathered for one household or one street."""

    lifts: list[Any] = field(default_factory=list)
    street_id: int | None = None
    address_id: int | None = None
    bin_id: str | None = None


@dataclass(frozen=True, slots=True)
class HouseholdKey:
    """A household: an RFID bin (certain) or an address; written ``bin:<rfid>`` or ``address:<id>``
    in items, contacts and opt-outs."""

    bin_id: str | None = None
    address_id: int | None = None

    def __str__(self) -> str:
        return f"bin:{self.bin_id}" if self.bin_id else f"address:{self.address_id}"

    @classmethod
    def parse(cls, text: str) -> HouseholdKey:
        """The key written ``text``, a bin's tag in its canonical form (``base.bin_tags``: the
        registry's and the lifts'); ``ValueError`` when it is neither form."""
        kind, _, value = (text or "").partition(":")
        if kind == "bin" and _BIN_ID.fullmatch(value := canonical_tag(value)):
            return cls(bin_id=value)
        # An address id is a database integer: 80 digits passed here, then overflowed the key column (a 500).
        if kind == "address" and value.isascii() and value.isdigit() and len(value) <= 10:
            return cls(address_id=int(value))
        raise ValueError(f"household key {text!r}: expected address:<id> or bin:<rfid>")


_BIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def household_key(bin_id: str | None, address_id: int | None, confidence: float | None,
                  min_confidence: float) -> str | None:
    """The household a lift is attributed to, or None when only its street is sure enough."""
    if bin_id:
        return str(HouseholdKey(bin_id=bin_id))
    if address_id is not None and confidence is not None and confidence >= min_confidence:
        return str(HouseholdKey(address_id=address_id))
    return None


def categories_of(errors: list[dict[str, Any]]) -> set[str]:
    """Error categories that made a lift contaminated (``info`` items are not contamination)."""
    return {e["category"] for e in errors if e.get("severity") != Severity.info}


def pct(value: float, digits: int = 0) -> str:
    """A percentage the French way: ``12,5 %``."""
    return f"{value * 100:.{digits}f} %".replace(".", ",")


def french_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


@dataclass(slots=True)
class Sent:
    level: int = 0
    sent_at: datetime | None = None
    open_campaign: int | None = None


def thanks_reason(lifts: int, contaminated: int, before: tuple[int, int], rules: Any) -> str:
    if lifts < rules.min_lifts:
        return ""
    rate = contaminated / lifts
    if rate <= rules.max_rate:
        counted = plural(contaminated, "levée contaminée", "levées contaminées")
        return f"rue propre : {contaminated} {counted} sur {lifts} ({pct(rate, 1)})"
    lifts0, contaminated0 = before
    if lifts0 < rules.min_lifts:
        return ""
    rate0 = contaminated0 / lifts0
    # A drop counts only when the two intervals do not overlap: no thanks for noise.
    if rate0 - rate >= rules.min_improvement and wilson(contaminated, lifts)[1] < wilson(contaminated0, lifts0)[0]:
        return (f"rue en progrès : {pct(rate0)} → {pct(rate)} de levées contaminées ({lifts0} puis {lifts} "
                f"{plural(lifts, 'levée', 'levées')})")
    return ""


def fields_of(target: Target) -> dict[str, Any]:
    return {name: getattr(target, name) for name in Target.__slots__}


def count_streams(lifts: list[Any]) -> dict[str, int]:
    """Contaminated lifts per stream, most first and equal counts by name (as ``count_categories``)."""
    return dict(most_first(Counter(row.stream for row in lifts)))


def count_categories(lifts: list[Any]) -> Counter[str]:
    """Lifts per error category, most first and equal counts by name: ``most_common()`` keeps equal
    counts in insertion order, and a set's order changes with each process's string hashing (the
    reason and the letter listed "verre (4), sacs fermés (4)" in one run, the other way in the next)."""
    counter: Counter[str] = Counter()
    for row in lifts:
        counter.update(categories_of(row.errors))
    return Counter(dict(most_first(counter)))


@dataclass(slots=True)
class Names:
    streets: dict[int, str]
    session: Session
    addresses: dict[int, str] = field(default_factory=dict)

    def street(self, street_id: int | None) -> str:
        return self.streets.get(street_id, "") if street_id is not None else ""

    def synthetic(self) -> set[int]:
        """Addresses generated for demos: never shown or written to as a household's address."""
        return set(self.session.scalars(select(Address.id).where(Address.synthetic.is_(True))))

    def load_addresses(self, ids: set[int]) -> None:
        wanted = sorted(ids - set(self.addresses))
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start:start + 5000]
            self.addresses.update(dict.fromkeys(chunk, ""))
            self.addresses.update(dict(self.session.execute(
                select(Address.id, Address.label).where(Address.id.in_(chunk))).all()))

    def address(self, address_id: int | None) -> str:
        if address_id is None:
            return ""
        if address_id not in self.addresses:
            self.addresses[address_id] = self.session.scalar(
                select(Address.label).where(Address.id == address_id)) or ""
        return self.addresses[address_id]


def names_of(session: Session) -> Names:
    return Names({sid: f"{name}, {commune}" for sid, name, commune in
                   session.execute(select(Street.id, Street.name, Street.commune))}, session)
