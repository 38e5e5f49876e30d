"""Households along the streets of a round: real imported addresses, or synthetic ones.

Where the server holds addresses for a street (Base Adresse Nationale import), its households
are those addresses. Elsewhere they are generated along each segment on both sides (odd numbers
on one side, even on the other, plots 12 to 35 m wide as in a French town) and carry
``synthetic=True`` in everything the simulator writes: the ground truth, the address rows it may
add to the server (the server's own ``synthetic`` column) and their labels ("(simulé)").

Each household has a bin (an RFID tag for a configurable share of them) and a probability that a
lift of its bin is contaminated, drawn from its street's rate: the ground truth of the simulation.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trivue.sim.rounds import Link, StreetNetwork, StreetRef

SYNTHETIC_MARK = "(simulé)"
PLOT_M = (12.0, 35.0)  # street frontage of one plot (a bin every ~20 m each side)
JUNCTION_GAP_M = 6.0  # no door right on a junction
KERB_M = 7.0  # address point to the centre line
MAX_ADDRESS_M = 60.0  # an address farther from every driven link of its street is not on the round


@dataclass(frozen=True, slots=True)
class Household:
    """One household and its bin, placed on a link of the network."""

    id: str
    street: StreetRef
    link: int
    offset_m: float  # along the link, drawing order
    side: int  # +1 left of the drawing direction, -1 right
    number: str
    label: str
    lat: float
    lon: float
    synthetic: bool
    bin_id: str | None
    contamination: float  # probability that a lift of this bin is contaminated
    generated: bool = False  # made up by this run (not yet an address row of the server)
    # The address's identifier in its source (BAN id; ``sim:<id>`` for a generated one): what a
    # collectivity's bin inventory names it by (``bin_registry``).
    address_key: str | None = None


@dataclass(frozen=True, slots=True)
class ContaminationPlan:
    """How dirty each street is: a share of "bad" streets at ``bad_rate``, the rest at ``base_rate``."""

    base_rate: float = 0.08
    bad_rate: float = 0.6
    bad_share: float = 0.15
    overrides: dict[str, float] = field(default_factory=dict)  # street name -> rate

    def street_rates(self, streets: list[StreetRef], rng: random.Random) -> dict[StreetRef, float]:
        free = [s for s in streets if s.name not in self.overrides]
        bad = set(rng.sample(free, round(len(free) * self.bad_share))) if free else set()
        return {s: self.overrides.get(s.name, self.bad_rate if s in bad else self.base_rate) for s in streets}


@dataclass(frozen=True, slots=True)
class AddressPoint:
    """An imported address of the server's database."""

    street_id: int
    number: str
    label: str
    lat: float
    lon: float
    synthetic: bool
    source_key: str | None = None


class HouseholdBuilder:
    """Places households on a network, from imported addresses where a street has some."""

    def __init__(self, network: StreetNetwork, rng: random.Random, rfid_share: float = 0.6) -> None:
        self.network, self.rng, self.rfid_share = network, rng, rfid_share
        self._serial = 0

    def build(self, rates: dict[StreetRef, float], addresses: Sequence[AddressPoint] = (),
              links: set[int] | None = None) -> list[Household]:
        """Households of the streets in ``rates`` (on ``links`` only, when given)."""
        by_street: dict[int, list[AddressPoint]] = defaultdict(list)
        for point in addresses:
            by_street[point.street_id].append(point)
        links_of: dict[StreetRef, list[Link]] = defaultdict(list)
        for link in self.network.links:
            if link.street in rates and (links is None or link.index in links):
                links_of[link.street].append(link)
        households: list[Household] = []
        for street, links in links_of.items():
            rate = rates[street]
            real = by_street.get(street.street_id, []) if street.street_id is not None else []
            if real:
                households.extend(self._from_addresses(street, links, real, rate))
            else:
                households.extend(self._generated(street, links, rate))
        return households

    def _bin(self) -> str | None:
        self._serial += 1
        return f"E2801160{self._serial:08X}" if self.rng.random() < self.rfid_share else None

    def _from_addresses(self, street: StreetRef, links: list[Link], points: list[AddressPoint],
                        rate: float) -> list[Household]:
        result = []
        for point in points:
            x, y = self.network.frame.to_xy(point.lon, point.lat)
            best = min(((link, *link.project(x, y)) for link in links), key=lambda item: item[2])
            link, offset, distance, side = best
            if distance > MAX_ADDRESS_M:  # on a part of the street this round does not drive
                continue
            result.append(Household(f"a{street.key}-{len(result) + 1}", street, link.index, offset, side,
                                    point.number, point.label, point.lat, point.lon, point.synthetic,
                                    self._bin(), rate, address_key=point.source_key))
        return result

    def _generated(self, street: StreetRef, links: list[Link], rate: float) -> list[Household]:
        result = []
        numbers = {1: 1, -1: 2}  # odd numbers on the left, even on the right
        for link in links:
            for side in (1, -1):
                offset = JUNCTION_GAP_M + self.rng.uniform(0, PLOT_M[0])
                while offset < link.length_m - JUNCTION_GAP_M:
                    result.append(self._synthetic(street, link, offset, side, numbers[side], rate))
                    numbers[side] += 2
                    offset += self.rng.uniform(*PLOT_M)
        return result

    def _synthetic(self, street: StreetRef, link: Link, offset: float, side: int, number: int,
                   rate: float) -> Household:
        x, y, heading = link.point_at(offset)
        # Left of the drawing direction is heading - 90 degrees.
        angle = math.radians(heading - 90 * side)
        lon, lat = self.network.frame.to_lonlat(x + KERB_M * math.sin(angle), y + KERB_M * math.cos(angle))
        label = f"{number} {street.name} {street.commune} {SYNTHETIC_MARK}".replace("  ", " ")
        key = f"s{street.key}-{number}"
        return Household(key, street, link.index, offset, side, str(number), label,
                         lat, lon, True, self._bin(), rate, generated=True, address_key=f"sim:{key}")


def load_addresses(session: object, street_ids: set[int]) -> list[AddressPoint]:
    """The server's addresses linked to these streets (imported ones and earlier synthetic ones)."""
    from sqlalchemy import select

    from server.streets.models import Address

    query = select(Address.street_id, Address.number, Address.label, Address.lat, Address.lon,
                   Address.synthetic, Address.source_key).where(Address.street_id.in_(sorted(street_ids)))
    return [AddressPoint(*row) for row in session.execute(query)]  # type: ignore[attr-defined]


def store_synthetic(session: object, households: list[Household]) -> int:
    """Add the synthetic households as ``synthetic`` address rows, so lifts match an address.

    Idempotent: rows are keyed ``sim:<household id>``; a second run adds nothing.
    """
    from sqlalchemy import select

    from server.streets.models import Address
    from server.streets.names import street_key

    fresh = [h for h in households if h.generated and h.street.street_id is not None]
    existing = set(session.scalars(select(Address.source_key).where(Address.synthetic.is_(True))))  # type: ignore[attr-defined]
    rows = [Address(street_id=h.street.street_id, number=h.number, label=h.label, street_name=h.street.name,
                    street_key=street_key(h.street.name), postcode="", commune=h.street.commune,
                    lat=h.lat, lon=h.lon, synthetic=True, source_key=h.address_key)
            for h in fresh if h.address_key not in existing]
    session.add_all(rows)  # type: ignore[attr-defined]
    return len(rows)


def write_bin_registry(path: Path, households: Sequence[Household]) -> int:
    """The collectivity's bin inventory as the simulation knows it, in the format of ``trivue bins
    import``: each tagged household's tag and address key. Returns how many bins it lists."""
    rows = [(h.bin_id, h.address_key) for h in households if h.bin_id and h.address_key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{tag};{key}\n" for tag, key in [("tag", "address"), *rows]), encoding="utf-8")
    return len(rows)
