"""A simulation scenario: streets, households, rounds and the timed lifts of every truck.

Built once, seeded, then played by events-only mode (``trivue.sim.fleet``) or full mode
(``trivue.sim.trucks``, the real edge agent). Everything random comes from one ``random.Random``.
"""

from __future__ import annotations

import difflib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trivue.sim.homes import ContaminationPlan, Household, HouseholdBuilder, load_addresses
from trivue.sim.rounds import StreetNetwork, StreetRef
from trivue.sim.schedule import DrivingSettings, PlannedLift, TruckDay, index_by_link

if TYPE_CHECKING:
    from trivue.sim.reached import ReminderEffect

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScenarioOptions:
    trucks: int = 3
    round_km: float = 3.0
    days: int = 1
    area: tuple[float, float, float] | None = None  # lat, lon, radius metres
    rfid_share: float = 0.6
    seed: int = 1
    truck_prefix: str = "sim"
    contamination: ContaminationPlan = field(default_factory=ContaminationPlan)
    driving: DrivingSettings = field(default_factory=DrivingSettings)


@dataclass
class Scenario:
    network: StreetNetwork
    households: list[Household]
    rates: dict[StreetRef, float]
    trucks: list[str]
    rounds: dict[str, list]  # truck id -> drives
    rng: random.Random

    @property
    def bad_streets(self) -> list[StreetRef]:
        worst = max(self.rates.values(), default=0.0)
        return [s for s, r in self.rates.items() if r == worst and worst > 0]

    def lifts(self, start: datetime, days: int = 1, driving: DrivingSettings | None = None,
              effect: ReminderEffect | None = None) -> list[PlannedLift]:
        """Every truck's lifts, day after day from ``start`` (same rounds, new bins and contents);
        ``effect``: reminders that reached some households (``trivue.sim.reached``)."""
        day = TruckDay(self.network, index_by_link(self.households), driving or DrivingSettings(), self.rng, effect)
        result: list[PlannedLift] = []
        sequence = dict.fromkeys(self.trucks, 0)
        for d in range(days):
            for truck in self.trucks:
                planned = day.lifts(truck, self.rounds[truck], start + timedelta(days=d), sequence[truck])
                sequence[truck] += len(planned)
                result.extend(planned)
        return result


def load_network(streets_file: Path | None, commune: str | None, session: object | None) -> StreetNetwork:
    if streets_file is not None:
        return StreetNetwork.from_file(streets_file, commune)
    if session is None:
        raise ValueError("no street network: pass --streets FILE or import streets into the server database")
    return StreetNetwork.from_session(session)


def check_street_names(network: StreetNetwork, plan: ContaminationPlan) -> None:
    """Refuse a ``--street-rate`` naming no street of ``network``: its rate would silently apply to
    nothing. A ValueError, which the commands turn into their one-line error."""
    names = {street.name for street in network.streets}
    for name in plan.overrides:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(f"--street-rate {name!r}: no street of that name in the streets simulated{hint}")


def build_scenario(network: StreetNetwork, options: ScenarioOptions, session: object | None = None) -> Scenario:
    """Households, contamination rates and rounds over ``network`` (a district of it with ``area``)."""
    rng = random.Random(options.seed)
    if options.area is not None:
        network = network.within(*options.area)
    check_street_names(network, options.contamination)
    trucks = [f"{options.truck_prefix}-{i + 1:0{max(2, len(str(options.trucks)))}d}" for i in range(options.trucks)]
    done: set[int] = set()
    rounds = {}
    for truck in trucks:
        if len(done) >= len(network.links):  # more trucks than streets: a new day of the same city
            done.clear()
        rounds[truck] = network.plan_round(rng, done, options.round_km * 1000)
    driven = {d.link.index for drives in rounds.values() for d in drives if d.collect}
    streets = sorted({network.links[i].street for i in driven}, key=lambda s: (s.commune, s.name))
    # Bad streets are drawn among the streets collected, so that every one of them is seen.
    rates = options.contamination.street_rates(streets, rng)
    street_ids = {s.street_id for s in streets if s.street_id is not None}
    addresses = load_addresses(session, street_ids) if session is not None and street_ids else []
    households = HouseholdBuilder(network, rng, options.rfid_share).build(rates, addresses, driven)
    real = sum(not h.synthetic for h in households)
    log.info("scenario: %d streets, %d segments, %d households (%d from imported addresses, %d synthetic), "
             "%d trucks", len(network.streets), len(network.links), len(households), real,
             len(households) - real, len(trucks))
    return Scenario(network, households, rates, trucks, rounds, rng)
