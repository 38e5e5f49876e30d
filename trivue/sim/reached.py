"""Households a reminder reached, and how their sorting changes after it (the simulator's ground truth)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from trivue.sim.homes import Household
from trivue.sim.rounds import StreetRef


@dataclass(frozen=True, slots=True)
class ReminderEffect:
    drop: float  # relative drop of the contamination probability, 0..1
    delay: timedelta = timedelta(days=2)  # the message is read, the habit changes
    reached: Mapping[str, datetime] = field(default_factory=dict)  # household id -> when the message left

    def __post_init__(self) -> None:
        if not 0 <= self.drop <= 1:
            raise ValueError(f"drop {self.drop}: expected a share between 0 and 1")
        if self.delay < timedelta(0):
            raise ValueError(f"delay {self.delay}: expected zero or more")

    @classmethod
    def on_streets(cls, households: Iterable[Household], streets: set[StreetRef], at: datetime, drop: float,
                   delay: timedelta = timedelta(days=2)) -> ReminderEffect:
        """Every household of ``streets`` reached at ``at`` (a street notice in every letterbox)."""
        return cls(drop, delay, {h.id: at for h in households if h.street in streets})

    def probability(self, household: Household, at: datetime) -> float:
        reached = self.reached.get(household.id)
        if reached is None or at < reached + self.delay:
            return household.contamination
        return household.contamination * (1 - self.drop)
