"""A truck's day on its round: when it reaches each bin, where its GPS says it is, what it lifts.

Driving between stops at a town speed, a stop per bin set out (bins facing each other share a
stop), a lift of some seconds. The GPS fix is the true position on the centre line plus Gaussian
noise, with the reported accuracy and the heading of travel; some fixes are missing (dropouts
under trees and in narrow streets). The RFID tag is read for most tagged bins, not all.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trivue.sim.homes import Household
from trivue.sim.rounds import Drive, StreetNetwork

if TYPE_CHECKING:
    from trivue.sim.reached import ReminderEffect

SHARED_STOP_M = 5.0  # bins on both sides this close are emptied at one stop


@dataclass(frozen=True, slots=True)
class DrivingSettings:
    """How trucks drive, stop and see: defaults are a rear-loader in a French town centre."""

    speed_kmh: float = 18.0
    lift_s: tuple[float, float] = (6.0, 14.0)  # bin hooked, emptied, put down
    walk_s: float = 8.0  # crew to the bin and back
    setout: float = 0.8  # share of bins put out on collection day
    gps_sigma_m: float = 4.0
    gps_dropout: float = 0.03
    rfid_read: float = 0.95  # a tagged bin is read this often


@dataclass(frozen=True, slots=True)
class PlannedLift:
    """One bin lift as it truly happened (the simulation's ground truth before any fault)."""

    truck_id: str
    sequence: int
    household: Household
    started_at: datetime
    ended_at: datetime
    lat: float  # true truck position
    lon: float
    heading: float
    gps: dict[str, float] | None  # what the truck's receiver reports (lat, lon, accuracy_m, heading_deg)
    bin_id: str | None  # tag read, if any
    contaminated: bool


def index_by_link(households: list[Household]) -> dict[int, list[Household]]:
    by_link: dict[int, list[Household]] = defaultdict(list)
    for household in households:
        by_link[household.link].append(household)
    return by_link


class TruckDay:
    """Lays the lifts of one round out in time."""

    def __init__(self, network: StreetNetwork, by_link: dict[int, list[Household]], settings: DrivingSettings,
                 rng: random.Random, effect: ReminderEffect | None = None) -> None:
        self.network, self.by_link, self.settings, self.rng = network, by_link, settings, rng
        self.effect = effect  # reminders sent: reached households sort better after a while

    def lifts(self, truck_id: str, drives: list[Drive], start: datetime, first_sequence: int = 0) -> list[PlannedLift]:
        speed = self.settings.speed_kmh / 3.6
        walk = timedelta(seconds=self.settings.walk_s)
        clock, sequence, result = start, first_sequence, []
        here: tuple[float, float] | None = None
        for drive in drives:
            link, forward = drive.link, drive.forward
            begin = link.point_at(0.0, forward)[:2]
            if here is not None:  # a transfer through streets outside the loaded area
                clock += timedelta(seconds=math.dist(here, begin) * 1.4 / speed)
            here = link.point_at(link.length_m, forward)[:2]
            travelled = 0.0
            for s, bins in self._stops(drive):
                clock += timedelta(seconds=(s - travelled) / speed)
                travelled = s
                x, y, heading = link.point_at(s, forward)
                lon, lat = self.network.frame.to_lonlat(x, y)  # where the truck stands, for all the stop's bins
                for household in bins:
                    lift = self._lift(truck_id, sequence, household, clock, x, y, heading, lon, lat)
                    result.append(lift)
                    sequence += 1
                    clock = lift.ended_at + walk
            clock += timedelta(seconds=(link.length_m - travelled) / speed)
        return result

    def _stops(self, drive: Drive) -> Iterator[tuple[float, list[Household]]]:
        if not drive.collect:
            return
        length = drive.link.length_m
        out = [h for h in self.by_link.get(drive.link.index, []) if self.rng.random() < self.settings.setout]
        # by position only: imported addresses projected on a link's end share one offset, and
        # households do not compare (their list order, kept by the stable sort, breaks the tie)
        along = sorted((((h.offset_m if drive.forward else length - h.offset_m), h) for h in out), key=lambda p: p[0])
        group: list[Household] = []
        at = -math.inf
        for s, household in along:
            if group and s - at > SHARED_STOP_M:
                yield at, group
                group = []
            if not group:
                at = s
            group.append(household)
        if group:
            yield at, group

    def _lift(self, truck_id: str, sequence: int, household: Household, clock: datetime, x: float, y: float,
              heading: float, lon: float, lat: float) -> PlannedLift:
        # random.uniform(a, b) is a + (b - a) * random(), written out: the same draws and values,
        # without two calls per lift (a simulated month is some 35,000 lifts)
        rng, cfg = self.rng, self.settings
        shortest, longest = cfg.lift_s
        ended = clock + timedelta(seconds=shortest + (longest - shortest) * rng.random())
        gps = None
        if rng.random() >= cfg.gps_dropout:
            sigma = cfg.gps_sigma_m
            nx, ny = rng.gauss(0, sigma), rng.gauss(0, sigma)
            glon, glat = self.network.frame.to_lonlat(x + nx, y + ny)
            gps = {"lat": round(glat, 7), "lon": round(glon, 7),
                   "accuracy_m": round(sigma * (1.0 + rng.random()), 1),  # uniform(1, 2)
                   "heading_deg": round((heading + rng.gauss(0, 5)) % 360, 1) % 360}
        read = household.bin_id if household.bin_id and rng.random() < cfg.rfid_read else None
        chance = self.effect.probability(household, clock) if self.effect else household.contamination
        return PlannedLift(truck_id, sequence, household, clock, ended, lat, lon, heading, gps, read,
                           rng.random() < chance)
