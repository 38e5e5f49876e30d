"""The targeting rules engine: who would get which reminder, and why (``trivue reminders plan``).

A *household* is an RFID bin (certain attribution) or an address the lift was matched to with
enough confidence; a lift matched with less confidence (GPS uncertainty, several houses within
reach) counts for its *street* only and never leads to a household letter. Planning reads the
lifts and street aggregates of a window and writes nothing: ``server.reminders.campaigns`` stores a plan
as a campaign whose items wait for a person's approval.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.ingest.models import Evidence, Lift, StreetDay
from server.reminders.config import RemindersConfig
from server.reminders.models import (
    APPROVED,
    HOUSEHOLD,
    PENDING,
    RETRY,
    SENDING,
    SENT,
    STREET,
    THANKS,
    FalseDetection,
    Item,
    OptOut,
)
from server.reminders.phrases import plural
from server.reminders.targets import (
    HouseholdKey,
    Plan,
    Sent,
    Skip,
    Target,
    Unit,
    count_categories,
    count_streams,
    fields_of,
    french_day,
    household_key,
    names_of,
    pct,
    thanks_reason,
)
from server.reminders.templates import CATEGORY_LABELS

STREET_LIFTS = 200  # a street notice's newest contaminated lifts: its errors and photos


class Planner:
    """Applies the rules to the lifts of ``[since, until]`` (local days, inclusive)."""

    def __init__(self, session: Session, config: RemindersConfig, since: date, until: date,
                 households: bool = True) -> None:
        if until < since:
            raise ValueError(f"la fin {until} est avant le début {since}")
        self.session = session
        self.config = config
        # False while the server's household level is off (server.web.privacy): every lift counts for its
        # street, so street notices still go out and no address or bin is ever a target.
        self.households = households
        self.since, self.until = since, until
        self.now = datetime.combine(until + timedelta(days=1), time(), UTC)
        self.skipped: list[Skip] = []
        self.names = names_of(session)
        self._photo_known: dict[str, bool] = {}
        self._street_rows: dict[int, list[Any]] = defaultdict(list)  # every contaminated lift, by street

    def plan(self) -> Plan:
        households, streets, unmatched = self._gather()
        by_street = {street_id: len(u.lifts) for street_id, u in streets.items()}
        street_only = sum(by_street.values())
        targets = self._households(households)
        street_targets = self._streets(streets)
        targets += street_targets
        targets += self._thanks({t.street_id for t in street_targets} | set(self.config.exclude.streets))
        quiet = self.config.quiet(self.until + timedelta(days=1))
        if quiet is not None:  # nobody is written to in a quiet period; show whom the rules chose
            self.skipped += [Skip(t.key, t.label, f"période calme : {quiet.reason}", t.street_id) for t in targets]
            targets = []
        return Plan(self.since, self.until, tuple(targets), tuple(self.skipped),
                    street_only, unmatched, quiet.reason if quiet else None, by_street)

    def _gather(self) -> tuple[dict[str, Unit], dict[int, Unit], int]:
        rules = self.config.household
        query = (select(Lift.event_id, Lift.day, Lift.street_id, Lift.address_id, Lift.bin_id,
                        Lift.match_confidence, Lift.errors, Lift.evidence_sha256, Lift.stream)
                 .where(Lift.contaminated.is_(True), Lift.overruled_at.is_(None), Lift.day >= self.since,
                        Lift.day <= self.until,  # an overruled lift counts clean (server.ingest.overrule)
                        Lift.view_unusable.is_(None),  # the camera saw nothing usable: not judged (wire 1.4)
                        # a lift a reviewer called a false detection never counts against anyone again
                        Lift.event_id.not_in(select(FalseDetection.event_id)))
                 .order_by(Lift.started_at.desc()))
        if rules.streams:
            query = query.where(Lift.stream.in_(rules.streams))
        households: dict[str, Unit] = defaultdict(Unit)
        streets: dict[int, Unit] = defaultdict(Unit)
        unmatched = 0
        synthetic = self.names.synthetic()
        self._street_rows.clear()  # a second plan() on this Planner would count each lift twice
        for row in self.session.execute(query):
            if row.street_id is not None:
                self._street_rows[row.street_id].append(row)
            address = None if row.address_id in synthetic else row.address_id  # demo data is no household
            key = household_key(row.bin_id, address, row.match_confidence, rules.min_address_confidence) \
                if self.households else None
            if key is not None:
                unit = households[key]
                unit.bin_id = row.bin_id
                sure = (row.match_confidence or 0) >= rules.min_address_confidence
                if unit.address_id is None and (sure or not row.bin_id):
                    unit.address_id = address
                unit.street_id = unit.street_id or row.street_id
            elif row.street_id is not None:
                unit = streets[row.street_id]
                unit.street_id = row.street_id
            else:
                unmatched += 1
                continue
            unit.lifts.append(row)
        return households, streets, unmatched

    def _households(self, households: dict[str, Unit]) -> list[Target]:
        rules = self.config.household
        candidates = {k: u for k, u in households.items() if len(u.lifts) >= rules.min_contaminated_lifts}
        totals = self._household_totals(set(candidates))
        history = self._history(set(candidates), rules.escalation_memory_days)
        opted_out = set(self.session.scalars(select(OptOut.key).where(OptOut.key.in_(list(candidates)))))
        self._prefetch(list(candidates.values()))
        targets = []
        for key, unit in sorted(candidates.items()):
            refusal = self._refusal(key, unit, opted_out, history.get(key), rules.cooldown_days)
            if refusal:
                self.skipped.append(Skip(key, self._label(unit), refusal, unit.street_id))
                continue
            previous = history.get(key)
            level = min((previous.level if previous else 0) + 1, len(self.config.levels))
            targets.append(self._target(HOUSEHOLD, key, unit, totals.get(key, len(unit.lifts)), level,
                                        self._household_reason(unit, totals.get(key, 0), previous, level)))
        return targets

    def _refusal(self, key: str, unit: Unit, opted_out: set[str], last: Sent | None, cooldown: int) -> str:
        exclude = self.config.exclude
        if key in opted_out:
            return "le foyer a demandé à ne plus recevoir de rappels (opposition)"
        if unit.address_id in exclude.addresses or unit.bin_id in exclude.bins or unit.street_id in exclude.streets:
            return "exclu par la configuration (liste d'exclusion)"
        if last and last.open_campaign:
            return f"déjà en attente de revue dans la campagne {last.open_campaign}"
        if last and last.sent_at and self.now - last.sent_at < timedelta(days=cooldown):
            last_day = french_day(last.sent_at.date())
            return f"délai entre deux messages : dernier envoi le {last_day} (délai {cooldown} j)"
        return ""

    def _household_reason(self, unit: Unit, total: int, previous: Sent | None, level: int) -> str:
        rules = self.config.household
        cats = ", ".join(f"{CATEGORY_LABELS.get(c, c)} ({n})" for c, n in count_categories(unit.lifts).most_common())
        how = "bac identifié par puce RFID" if unit.bin_id else "adresse sûre (confiance ≥ " \
            f"{pct(rules.min_address_confidence)})"
        period = f"du {french_day(self.since)} au {french_day(self.until)}"
        n = len(unit.lifts)
        text = (f"{n} {plural(n, 'levée contaminée', 'levées contaminées')} sur {total} {period} "
                f"(seuil : {rules.min_contaminated_lifts}) ; erreurs : {cats} ; {how}")
        if previous and previous.sent_at:
            text += f" ; message de niveau {previous.level} déjà envoyé le {french_day(previous.sent_at.date())}"
        return f"{text} → niveau {level} ({self.config.levels[level - 1].action})"

    def _target(self, kind: str, key: str, unit: Unit, total: int, level: int, reason: str) -> Target:
        action = self.config.levels[level - 1].action if level else "remerciement"
        return Target(kind, level, action, key, unit.street_id, self._label(unit), total, len(unit.lifts),
                      dict(count_categories(unit.lifts).most_common()), self._photos(unit.lifts), reason,
                      unit.address_id, unit.bin_id, streams=count_streams(unit.lifts) if unit.lifts else None)

    def _photos(self, lifts: list[Any]) -> tuple[str, ...]:
        """Most recent contaminated lifts whose evidence photo is on file."""
        wanted = [row.event_id for row in lifts if row.evidence_sha256][:50]
        missing = [e for e in wanted if e not in self._photo_known]
        for start in range(0, len(missing), 5000):  # one query per chunk, not one per household
            chunk = missing[start:start + 5000]
            self._photo_known.update(dict.fromkeys(chunk, False))
            self._photo_known.update(dict.fromkeys(self.session.scalars(
                select(Evidence.event_id).where(Evidence.event_id.in_(chunk))), True))
        return tuple(e for e in wanted if self._photo_known[e])[: self.config.household.max_photos]

    def _prefetch(self, units: list[Unit]) -> None:
        """Photos and address labels of every candidate in a few queries."""
        self._photos([row for unit in units for row in unit.lifts])
        self.names.load_addresses({u.address_id for u in units if u.address_id is not None})

    def _label(self, unit: Unit) -> str:
        if unit.bin_id:
            where = self.names.address(unit.address_id) or self.names.street(unit.street_id)
            return f"bac {unit.bin_id}" + (f" ({where})" if where else "")
        if unit.address_id is not None:
            return self.names.address(unit.address_id) or f"adresse {unit.address_id}"
        return self.names.street(unit.street_id) or f"rue {unit.street_id}"

    def _household_totals(self, keys: set[str]) -> dict[str, int]:
        """All lifts (clean too) of each candidate household in the window."""
        households = [HouseholdKey.parse(key) for key in keys]
        bins = [h.bin_id for h in households if h.bin_id]
        addresses = [h.address_id for h in households if h.address_id is not None]
        totals: Counter[str] = Counter()
        # "N contaminated of M": one scope, and a lift the camera could not see is neither (wire 1.4)
        window = (Lift.day >= self.since, Lift.day <= self.until, Lift.view_unusable.is_(None), *self._streams())
        for bin_id, n in self.session.execute(select(Lift.bin_id, func.count()).where(
                Lift.bin_id.in_(bins), *window).group_by(Lift.bin_id)):
            totals[str(HouseholdKey(bin_id=bin_id))] = n
        threshold = self.config.household.min_address_confidence
        for address_id, n in self.session.execute(select(Lift.address_id, func.count()).where(
                Lift.address_id.in_(addresses), Lift.bin_id.is_(None), Lift.match_confidence >= threshold,
                *window).group_by(Lift.address_id)):
            totals[str(HouseholdKey(address_id=address_id))] = n
        return totals

    def _history(self, keys: set[str], memory_days: int) -> dict[str, Sent]:
        since = self.now - timedelta(days=memory_days)
        history: dict[str, Sent] = {}
        rows = self.session.execute(select(Item.target_key, Item.level, Item.sent_at, Item.status, Item.campaign_id)
                                    .where(Item.target_key.in_(list(keys)),
                                           # a retry or a claim goes out without a person: as open as pending
                                           Item.status.in_((SENT, PENDING, APPROVED, RETRY, SENDING))))
        for key, level, sent_at, status, campaign in rows:
            entry = history.setdefault(key, Sent())
            if status == SENT and sent_at is not None and sent_at >= since:
                entry.level = max(entry.level, level)
                entry.sent_at = max(entry.sent_at or sent_at, sent_at)
            elif status != SENT:
                entry.open_campaign = campaign
        return {k: v for k, v in history.items() if v.sent_at or v.open_campaign}

    def _streams(self) -> tuple[Any, ...]:
        streams = self.config.household.streams
        return (Lift.stream.in_(streams),) if streams else ()

    def _street_totals(self, since: date, until: date) -> dict[int, tuple[int, int]]:
        query = (select(StreetDay.street_id, func.sum(StreetDay.lifts), func.sum(StreetDay.contaminated))
                 .where(StreetDay.day >= since, StreetDay.day <= until, StreetDay.street_id != 0)
                 .group_by(StreetDay.street_id))
        if self.config.household.streams:
            query = query.where(StreetDay.stream.in_(self.config.household.streams))
        return {sid: (int(n), int(c)) for sid, n, c in self.session.execute(query)}

    def _streets(self, street_only: dict[int, Unit]) -> list[Target]:
        rules = self.config.street
        totals = self._street_totals(self.since, self.until)
        history = self._history({f"street:{sid}" for sid in totals}, self.config.household.escalation_memory_days)
        targets = []
        for street_id, (lifts, contaminated) in sorted(totals.items()):
            unit = street_only.get(street_id) or Unit(street_id=street_id)
            rate = contaminated / lifts if lifts else 0.0
            # Never below the configured rate: unattributed lifts only let a street with fewer than
            # min_lifts lifts qualify (a street at 6 % is no street to write to, however many lifts).
            enough = lifts >= rules.min_lifts or len(unit.lifts) >= rules.min_unattributed
            if rate < rules.min_rate or not enough:
                continue
            key = f"street:{street_id}"
            refusal = self._refusal(key, unit, set(), history.get(key), rules.cooldown_days)
            if refusal:
                self.skipped.append(Skip(key, self._label(unit), refusal, street_id))
                continue
            unattributed, unsure_errors = len(unit.lifts), dict(count_categories(unit.lifts))
            unsure_streams = count_streams(unit.lifts)  # the route sheet's line is about those lifts
            # Every contaminated lift: the street's errors. A new unit: the one gathered stays the
            # lifts without a sure household (``Plan.street_only_by_street`` counted 12 for 6).
            unit = Unit(self._street_lifts(street_id), street_id=street_id)
            previous = history.get(key)
            level = min((previous.level if previous else 0) + 1, len(self.config.levels))
            reason = (f"{contaminated} {plural(contaminated, 'levée contaminée', 'levées contaminées')} sur {lifts} "
                      f"({pct(rate)}, seuil {pct(rules.min_rate)} dès {rules.min_lifts} "
                      f"{plural(rules.min_lifts, 'levée', 'levées')}, ou dès {rules.min_unattributed} "
                      f"{plural(rules.min_unattributed, 'levée contaminée', 'levées contaminées')} sans foyer sûr) "
                      f"dont {unattributed} sans foyer sûr → communication à la rue, niveau {level}")
            target = self._target(STREET, key, unit, lifts, level, reason)
            targets.append(Target(**{**fields_of(target), "contaminated": contaminated,
                                     "unattributed": unattributed, "unattributed_categories": unsure_errors,
                                     "streams": unsure_streams}))
        return targets

    def _street_lifts(self, street_id: int) -> list[Any]:
        # The notice's errors and photos: the street's contaminated lifts ``_gather`` read (the
        # streams the rules look at, no false detection), newest first. One query per street
        # notice walked the street's whole history in ``ix_lifts_street_started`` (three years of a
        # métropole: 1,061 notices, 16 ms each, a 17 s plan).
        return self._street_rows.get(street_id, [])[:STREET_LIFTS]

    def _thanks(self, excluded: set[int | None]) -> list[Target]:
        rules = self.config.thanks
        if not rules.enabled:
            return []
        length = self.until - self.since + timedelta(days=1)
        now = self._street_totals(self.since, self.until)
        before = self._street_totals(self.since - length, self.since - timedelta(days=1))
        history = self._history({f"street:{sid}:thanks" for sid in now}, rules.cooldown_days)
        targets = []
        for street_id, (lifts, contaminated) in sorted(now.items()):
            why = thanks_reason(lifts, contaminated, before.get(street_id, (0, 0)), rules)
            key = f"street:{street_id}:thanks"
            if not why or street_id in excluded or key in history:
                continue
            unit = Unit(street_id=street_id)
            target = self._target(THANKS, key, unit, lifts, 0, why)
            targets.append(Target(**{**fields_of(target), "contaminated": contaminated}))
        return targets


def make_plan(session: Session, config: RemindersConfig, until: date, since: date | None = None, *,
              households: bool = True) -> Plan:
    """The plan for the window ending ``until`` (default length: ``household.window_days``).

    ``households=False`` plans at street level only; the API and the CLI pass the server's
    ``household_level`` setting, which is off by default.
    """
    since = since or until - timedelta(days=config.household.window_days - 1)
    return Planner(session, config, since, until, households).plan()
