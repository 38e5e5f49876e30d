"""A reminder's effect in the simulation, and simulated campaigns with a known truth.

``ReminderEffect``: from ``delay`` after a household was reached, the contamination probability
of its lifts is multiplied by ``1 - drop`` (``drop=0``: the message changes nothing). The truck
day (``trivue.schedule``) draws each lift with it, so the ground truth of every lift is known.

``simulate_trial`` plays a whole campaign on the committed Rennes extract: weekly collections,
streets whose true rates spread from clean to dirty, street notices sent to a random quarter of
the dirtier streets at 17:49 on a day between two collections, and the expected change those
streets' lifts truly underwent (``truth_did``). The effect report's estimator is checked against
it: it must cover the truth, and find nothing in about 5 % of trials when nothing was simulated
(``tests/trivue/test_reminder_effect.py``, ``bench/reminders_validity.py``).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from base.paths import SAMPLE_STREETS
from trivue.sim.homes import ContaminationPlan
from trivue.sim.reached import ReminderEffect
from trivue.sim.rounds import StreetNetwork, StreetRef
from trivue.sim.schedule import PlannedLift


@dataclass(frozen=True, slots=True)
class Trial:
    """A simulated campaign: lifts, the streets reached, when, and the true difference in differences."""

    lifts: list[PlannedLift]
    treated: set[StreetRef]
    sent_at: datetime
    truth_did: float  # true change of the targeted streets' rate caused by the message (the control's is 0)
    weeks: int


@cache
def _network() -> StreetNetwork:

    return StreetNetwork.from_file(SAMPLE_STREETS)


def simulate_trial(seed: int, drop: float, weeks: int = 4, network: StreetNetwork | None = None,
                   start: datetime = datetime(2026, 9, 7, 6, tzinfo=UTC),
                   delay: timedelta = timedelta(days=2)) -> Trial:
    """``weeks`` weekly collections before the send and as many after; see the module docstring."""
    from trivue.sim.scenario import ScenarioOptions, build_scenario
    from trivue.sim.schedule import DrivingSettings

    network = network or _network()
    rng = random.Random(seed)
    rates = {s.name: rng.uniform(0.04, 0.5) for s in network.streets}
    options = ScenarioOptions(trucks=12, round_km=6.0, seed=seed, contamination=ContaminationPlan(overrides=rates))
    scenario = build_scenario(network, options)
    streets = sorted(scenario.rates, key=lambda s: (s.commune, s.name))
    # A campaign reaches some of the dirtier streets; enough alike are left for two controls each.
    dirty = [s for s in streets if scenario.rates[s] >= 0.15]
    treated = set(rng.sample(dirty, len(dirty) // 4))
    sent_at = start + timedelta(days=7 * weeks - 3, hours=11, minutes=49)  # 17:49 on a day without collection
    effect = ReminderEffect.on_streets(scenario.households, treated, sent_at, drop, delay)
    driving = DrivingSettings()
    lifts = [lift for week in range(2 * weeks)
             for lift in scenario.lifts(start + timedelta(days=7 * week), 1, driving, effect)]
    after = [lift for lift in lifts if lift.household.street in treated and lift.started_at >= sent_at]
    truth = (sum(effect.probability(lift.household, lift.started_at) - lift.household.contamination
                 for lift in after) / len(after)) if after else 0.0
    return Trial(lifts, treated, sent_at, truth, weeks)


def estimate_trial(trial: Trial, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """What the effect report concludes from the trial's lifts: the server's own matching
    (``server.reminder_matching``) and estimator (``server.effect.conclude``), without a database."""
    from server.reminders.config import EffectRules
    from server.reminders.effect import conclude
    from server.reminders.effect_estimate import MatchedSet, Unit
    from server.reminders.matching import Candidate, match

    window = timedelta(days=7 * trial.weeks)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # lifts, dirty before; lifts, dirty after
    days: dict[str, Counter[int]] = defaultdict(Counter)
    streets: dict[str, StreetRef] = {}
    for lift in trial.lifts:
        key = f"{lift.household.street.commune}/{lift.household.street.name}"
        streets[key] = lift.household.street
        if trial.sent_at - window <= lift.started_at < trial.sent_at:
            counts[key][0] += 1
            counts[key][1] += lift.contaminated
            days[key][lift.started_at.weekday()] += 1
        elif trial.sent_at <= lift.started_at < trial.sent_at + window:
            counts[key][2] += 1
            counts[key][3] += lift.contaminated
    candidates = {k: Candidate(k, streets[k].commune, "recyclables", days[k].most_common(1)[0][0], c[0], c[1])
                  for k, c in counts.items() if c[0]}
    treated = [candidates[k] for k in sorted(candidates) if streets[k] in trial.treated]
    pool = [candidates[k] for k in sorted(candidates) if streets[k] not in trial.treated]
    rules = EffectRules(window_days=7 * trial.weeks, bootstrap=bootstrap)
    pairs = match(treated, pool, rules.controls_per_street)
    units = {k: Unit(k, (c[0], c[1]), (c[2], c[3])) for k, c in counts.items()}
    sets = [MatchedSet(units[k], tuple(units[c] for c in controls)) for k, controls in sorted(pairs.items())]
    return conclude(sets, candidates, rules, seed)


def lift_rows(trial: Trial) -> list[dict[str, Any]]:
    """The trial's lifts as the server stores them (``server.aggregates.insert_lifts``), on true streets."""
    from zoneinfo import ZoneInfo

    zone, rows = ZoneInfo("Europe/Paris"), []
    for n, lift in enumerate(trial.lifts):
        dirty = lift.contaminated
        rows.append({
            "event_id": str(uuid.UUID(int=n + 1)), "truck_id": lift.truck_id, "sequence": lift.sequence,
            "stream": "recyclables", "started_at": lift.started_at, "ended_at": lift.ended_at,
            "day": lift.started_at.astimezone(zone).date(), "received_at": lift.ended_at, "lat": lift.lat,
            "lon": lift.lon, "accuracy_m": 4.0, "heading_deg": None, "bin_id": None, "contaminated": dirty,
            "has_alert": False, "score": float(dirty), "counts": {"glass": 1} if dirty else {},
            "errors": [{"class": "glass", "count": 1, "category": "verre", "severity": "error"}] if dirty else [],
            "model_name": "sim", "model_version": "1", "frames": 10, "evidence_sha256": None,
            "street_id": lift.household.street.street_id, "segment_id": None, "street_distance_m": 3.0,
            "address_id": None, "address_distance_m": None, "match_confidence": 0.3, "street_confidence": None})
    return rows


def store_trial(session: Any, seed: int, drop: float, delay: timedelta = timedelta(days=2),
                weeks: int = 4) -> tuple[Trial, Any]:
    """A trial on the Rennes extract imported into ``session``'s database: its lifts, and a sent
    campaign of street notices to the treated streets (the caller commits)."""
    from server.ingest.aggregates import insert_lifts
    from server.reminders.models import Campaign, Item
    from server.streets.importer import import_street_file

    import_street_file(session, SAMPLE_STREETS, commune="Rennes")
    session.flush()
    trial = simulate_trial(seed, drop, weeks, network=StreetNetwork.from_session(session), delay=delay)
    rows = lift_rows(trial)
    for start in range(0, len(rows), 5000):
        insert_lifts(session, rows[start:start + 5000])
    campaign = Campaign(name=f"Campagne simulée (baisse {drop:.0%})", created_by="simulation",
                        since=trial.sent_at.date() - timedelta(days=7 * trial.weeks), until=trial.sent_at.date(),
                        rules={}, started_at=trial.sent_at)
    session.add(campaign)
    session.flush()
    for street in sorted(trial.treated, key=lambda s: s.street_id or 0):
        session.add(Item(campaign_id=campaign.id, kind="street", level=1, target_key=f"street:{street.street_id}",
                         street_id=street.street_id, lifts=0, contaminated=0, categories={}, event_ids=[],
                         reason="campagne simulée", status="sent", channel="print", sent_at=trial.sent_at))
    session.flush()
    return trial, campaign
