"""Turn a batch of truck messages into rows: lifts, photos, truck status and stats, dead letters.

Every message ends somewhere: stored, recognised as a duplicate, or in ``dead_letters`` with a
reason code (also the metrics label) and its first bytes, or all of them while a replay can still
store it (``server.ingest.letters``). Nothing here talks MQTT; ``ingest``
feeds it messages and acknowledges them once the batch is committed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from base.ids import is_truck_id
from server.config import ServerSettings
from server.db import utcnow
from server.ingest.aggregates import (
    LiftRow,
    StreetLocator,
    insert_lifts,
    lift_row,
    match_columns,
    match_rows,
    upsert,
)
from server.ingest.bins import BinLookup, place_tagged, registered
from server.ingest.evidence import EvidenceError, EvidenceStore
from server.ingest.letters import HeldBudget, LetterView, letter_row, letter_views
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence, Lift, Truck, TruckStatus
from server.ingest.photo_check import mismatch_detail, take_back_mismatched
from server.ingest.purge_gate import hold_off_purge
from server.ingest.streams import collected_streams, unknown_stream
from server.ingest.street_level import street_level
from server.ingest.tracks import Tracks
from server.ingest.truck_state import note
from vision.schema import SchemaError, TruckStats, parse_lift_event

log = logging.getLogger(__name__)

STATUSES = frozenset(s.value for s in TruckStatus if s is not TruckStatus.unknown)  # what a truck says of itself


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    letter_id: int | None = None  # a dead letter being replayed: refused again, it keeps its id
    # When that replay began: its lift must still be within the raw lifts' retention then, not only
    # when it was received (``Inbox._check_date``; the batch's own write time counts too).
    replayed_at: datetime | None = None
    # Sent by the broker from its retained copy (at each subscription: every server start and
    # reconnection), not as the truck published it: a status that may be days old.
    retained: bool = False


# Every reason a message can be a dead letter for (docs/api.md lists them): what the API and the
# CLI filter on, so that a misspelt filter is refused rather than answered with nothing.
DEAD_LETTER_REASONS = ("invalid_json", "schema", "truck_mismatch", "unknown_truck", "unknown_stream", "too_large",
                       "expired", "future", "bad_status", "bad_topic", "bad_jpeg", "evidence_mismatch", "store_error")
# A lift dated this far after it arrived comes from a clock that is ahead: counted, it would sit in
# days no one has lived yet (and past 2999 in none the API can ask for).
CLOCK_AHEAD = timedelta(days=1)


class Refused(Exception):
    """A message that goes to the dead letters: ``reason`` is a short code, ``str()`` the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class Batch:
    """What one batch produces, written in one transaction."""

    lifts: list[LiftRow] = field(default_factory=list)
    trucks: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    # When the batch is written, read once the purge is held off (``server.ingest.purge_gate``).
    written_at: datetime | None = None
    held: HeldBudget | None = None  # the bytes its letters may still keep whole
    # Per truck, its heartbeats' (agent start, sent_at, received_at), in order: ``server.ingest.truck_state``.
    beats: dict[str, list[tuple[datetime, datetime, datetime]]] = field(default_factory=dict)

    def seen(self, truck_id: str, at: datetime, alive: bool = True, **values: Any) -> None:
        """Note news of a truck; ``alive`` is False for retained status, which is no sign of life."""
        entry = self.trucks.setdefault(truck_id, {"truck_id": truck_id})
        if alive:
            entry["last_seen_at"] = max(entry.get("last_seen_at", at), at)
        entry.update(values)


class Inbox:
    """Classifies and stores messages under ``<prefix>/<truck_id>/{lift,stats,status,evidence/<id>}``."""

    def __init__(self, settings: ServerSettings, evidence: EvidenceStore, metrics: Metrics,
                 locator: Callable[[Session], StreetLocator | None] = lambda _s: None,
                 bins: BinLookup | None = None, clock: Callable[[], datetime] = utcnow,
                 streams: Iterable[str] | None = None) -> None:
        """``bins``: the bin registry (``server.streets.bins.bin_places``); a lift whose tag it
        knows takes its address and street. None: every lift is placed by its fix. ``clock``: the
        write time, against which retention is judged (tests move it). ``streams``: those counted,
        by default the settings' sorting rules' (``server.ingest.streams``)."""
        self.settings = settings
        self.evidence = evidence
        self.metrics = metrics
        self.locator = locator
        self.bins = bins
        self.clock = clock
        self.streams = collected_streams(settings, streams)
        self.prefix = settings.topic_prefix.rstrip("/") + "/"
        self.known = frozenset(settings.known_trucks) if settings.known_trucks is not None else None
        self.tracks = Tracks(bins, street_level=not settings.household_level)

    def write(self, session: Session, messages: Sequence[MqttMessage]) -> int:
        """Store a batch; returns how many became dead letters. The caller commits, then acks."""
        # Before anything else is written or the clock read: a purge that commits before this
        # batch deletes no lift this batch could then take for new (``_check_date``).
        hold_off_purge(session)
        batch = Batch(written_at=self.clock(), held=HeldBudget(self.settings))
        locator = self.locator(session)
        for message in messages:
            try:
                self._classify(session, batch, message, locator)
            except Refused as refused:
                batch.dead.append(self._letter(session, batch, message, refused.reason, str(refused)))
        for photo in take_back_mismatched(session, self.evidence, self.prefix, batch.lifts):
            message = MqttMessage(photo.topic, photo.payload, photo.received_at)
            batch.dead.append(self._letter(session, batch, message, "evidence_mismatch", photo.detail))
        moves = self._match_paths(session, batch, locator)
        if not self.settings.household_level:  # no tag, no address stored (docs/privacy.md §1 bis)
            for row in batch.lifts:
                street_level(row)
        self._flush(session, batch)
        if batch.lifts:
            report = self.tracks.settle(session, moves, max(r["received_at"] for r in batch.lifts))
            self.metrics.inc("trivue_ingest_lifts_rematched_total", report.moved)
        return len(batch.dead)

    def _match_paths(self, session: Session, batch: Batch, locator: StreetLocator | None) -> list[dict[str, Any]]:
        """Street matching from the trucks' paths (``server.ingest.tracks``) when the locator can,
        else lift by lift (``_match``). A bug there must not lose lifts: they are matched lift by lift."""
        if not batch.lifts:
            return []
        if not self.tracks.can_match(locator):
            self._match(session, batch.lifts, locator)
            return []
        try:
            return self.tracks.match(session, locator, batch.lifts)
        except Exception:
            log.exception("trajectory matching failed for a batch of %d lifts; matching them one by one",
                          len(batch.lifts))
            for row in batch.lifts:
                row.update(street_confidence=None, match_provisional=False)
            self._match(session, batch.lifts, locator)
            return []

    def refuse(self, session: Session, message: MqttMessage, reason: str, detail: str) -> None:
        """Store ``message`` as a dead letter directly (a message that broke a batch)."""
        batch = Batch(held=HeldBudget(self.settings))
        batch.dead.append(self._letter(session, batch, message, reason, detail))
        self._flush(session, batch)

    def _letter(self, session: Session, batch: Batch, message: MqttMessage, reason: str, detail: str
                ) -> dict[str, Any]:
        parts = self.levels(message.topic) or []
        truck_id = parts[0][:64] if parts and parts[0] else None
        kind = parts[1] if len(parts) > 1 else ""
        budget = batch.held or HeldBudget(self.settings)
        whole, note = budget.decide(session, kind, reason, message.payload, message.letter_id is not None)
        return letter_row(message, reason, detail, truck_id, kind, whole, note)

    def levels(self, topic: str) -> list[str] | None:
        """The topic's levels under the prefix (``[truck_id, kind, ...]``); None outside it."""
        return topic.removeprefix(self.prefix).split("/") if topic.startswith(self.prefix) else None

    def _classify(self, session: Session, batch: Batch, message: MqttMessage, locator: StreetLocator | None) -> None:
        parts = self.levels(message.topic)
        if parts is None:
            raise Refused("bad_topic", f"topic outside {self.prefix}#")
        truck_id, kind = parts[0], "/".join(parts[1:2])
        self.metrics.inc("trivue_ingest_messages_total", kind=kind if kind in _KINDS else "other")
        if not is_truck_id(truck_id):  # LiftEvent.truck_id rule, and never "..": ids become paths
            raise Refused("bad_topic", f"truck id {truck_id[:70]!r} in the topic is not valid")
        if self.known is not None and truck_id not in self.known:
            raise Refused("unknown_truck", f"truck {truck_id!r} is not in the truck registry")
        handler = _KINDS.get(kind)
        if handler is None or len(parts) != (3 if kind == "evidence" else 2):
            raise Refused("bad_topic", f"unexpected topic {message.topic!r}")
        limit = self.settings.max_evidence_bytes if kind == "evidence" else self.settings.max_payload_bytes
        if len(message.payload) > limit:
            raise Refused("too_large", f"{kind} message of {len(message.payload)} bytes exceeds {limit}")
        handler(self, session, batch, message, truck_id, parts[2:], locator)

    def _lift(self, _s: Session, batch: Batch, message: MqttMessage, truck_id: str, _rest: list[str],
              locator: StreetLocator | None) -> None:
        try:
            event = parse_lift_event(message.payload)
        except SchemaError as error:
            reason = "invalid_json" if "JSON" in str(error) or "json" in str(error) else "schema"
            raise Refused(reason, str(error)) from None
        if event.truck_id != truck_id:
            raise Refused("truck_mismatch", f"topic says truck {truck_id!r}, payload says {event.truck_id!r}")
        self._check_date(event.started_at, message.received_at, message.replayed_at, batch.written_at)
        if (unknown := unknown_stream(event.stream.value, self.streams)) is not None:
            raise Refused("unknown_stream", unknown)
        # Matched to a street later, for the whole batch at once (``_match``).
        batch.lifts.append(lift_row(event, message.received_at, self.settings.zone, None))
        batch.seen(truck_id, message.received_at)

    def _check_date(self, started_at: datetime, received_at: datetime, replayed_at: datetime | None = None,
                    written_at: datetime | None = None) -> None:
        """Exactly-once holds while the raw lift is kept: a copy arriving after the retention purge
        would be counted again (a truck whose clock was set back to 2006 did that). A dead letter
        replayed later is such a late copy: its twin may have been purged since it was received. So
        is a copy that waited in the ingest queue (a database outage, a backlog) while the hourly
        purge ran: the age that counts is the one at write time, read after the purge was held off.
        And a lift from a clock that is ahead is refused rather than counted on days still to come."""
        kept = timedelta(days=self.settings.retention_days)
        if max(received_at, replayed_at or received_at, written_at or received_at) - started_at > kept:
            raise Refused("expired", f"lift of {started_at:%Y-%m-%d}, older than the {kept.days}-day retention of "
                          "raw lifts: a copy could no longer be told from it (a truck clock set back?)")
        if started_at - received_at > CLOCK_AHEAD:
            raise Refused("future", f"lift dated {started_at:%Y-%m-%d %H:%M} UTC, received "
                          f"{received_at:%Y-%m-%d %H:%M}: the truck's clock is ahead")

    def _check_photo_date(self, started_at: datetime, written_at: datetime) -> None:
        """A photo with no row whose lift is older than the photos' retention was received and purged
        already (a truck that sends it again, a copy that waited), or comes so late that it is past
        its retention anyway: stored, it would be kept ``evidence_retention_days`` more."""
        kept = timedelta(days=self.settings.evidence_retention_days)
        if written_at - started_at > kept:
            raise Refused("expired", f"photo of a lift of {started_at:%Y-%m-%d}, older than the {kept.days}-day "
                          "retention of photos: received and deleted before, or too late to keep")

    def _match(self, session: Session, rows: list[LiftRow], locator: StreetLocator | None) -> None:
        """Street matching of the batch's lifts, lift by lift, then the registered bins' places; a
        matching bug must not lose lifts: they are stored unmatched, and ``trivue streets rematch``
        fixes them later."""
        try:
            match_rows(locator, rows)
        except Exception:
            log.exception("street matching failed for a batch of %d lifts; matching them one by one", len(rows))
            for row in rows:  # isolate the fix that breaks the locator (``locate``), match the others
                try:
                    row.update(match_columns(locator, row["lat"], row["lon"], row["heading_deg"], row["accuracy_m"]))
                except Exception:
                    log.exception("street matching failed for lift %s; stored unmatched", row["event_id"])
        place_tagged(rows, registered(session, self.bins, rows))

    def _stats(self, _s: Session, batch: Batch, message: MqttMessage, truck_id: str, _rest: list[str],
               _locator: StreetLocator | None) -> None:
        try:
            stats = TruckStats.model_validate_json(message.payload)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(stats)"
            raise Refused("schema", f"stats: {where}: {first['msg']}") from None
        if stats.truck_id != truck_id:
            raise Refused("truck_mismatch", f"topic says truck {truck_id!r}, payload says {stats.truck_id!r}")
        batch.seen(truck_id, message.received_at, stats=stats.model_dump(mode="json"),
                   stats_at=message.received_at)
        try:
            started = stats.sent_at - timedelta(seconds=stats.uptime_s)
        except (OverflowError, ValueError):  # an uptime of centuries (or inf): no start time to compare
            return
        batch.beats.setdefault(truck_id, []).append((started, stats.sent_at, message.received_at))

    def _status(self, session: Session, batch: Batch, message: MqttMessage, truck_id: str, _rest: list[str],
                _locator: StreetLocator | None) -> None:
        status = message.payload.decode("utf-8", "replace").strip().lower()
        if status not in STATUSES:
            raise Refused("bad_status", f"status {status[:40]!r} is not one of {sorted(STATUSES)}")
        if message.retained and status == self._last_status(session, batch, truck_id):
            # The broker's copy of the status stored, sent again at our (re)subscription: no news. Its
            # time stays that of its first delivery, near when the truck said it (the payload carries
            # none); re-dated, a truck stopped yesterday read "stopped just now", and one whose second
            # agent runs read stopped, the status newer than its heartbeats, until the next one.
            batch.seen(truck_id, message.received_at, alive=False, status=status)
            return
        batch.seen(truck_id, message.received_at, alive=False, status=status, status_at=message.received_at)

    @staticmethod
    def _last_status(session: Session, batch: Batch, truck_id: str) -> str | None:
        """The truck's status as this batch leaves it: its own last one, else the stored one."""
        entry = batch.trucks.get(truck_id, {})
        if "status" in entry:
            return str(entry["status"])
        return session.scalar(select(Truck.status).where(Truck.truck_id == truck_id))

    def _evidence(self, session: Session, batch: Batch, message: MqttMessage, truck_id: str, rest: list[str],
                  _locator: StreetLocator | None) -> None:
        try:
            event_id = str(uuid.UUID(rest[0]))
        except ValueError:
            raise Refused("bad_topic", f"evidence topic names {rest[0][:60]!r}, not an event id") from None
        lift = session.execute(select(Lift.evidence_sha256, Lift.started_at).where(Lift.event_id == event_id)
                               .limit(1)).first()
        expected = lift.evidence_sha256 if lift is not None else None
        stored = session.scalar(select(Evidence.received_at).where(Evidence.event_id == event_id))
        if stored is None and lift is not None:
            self._check_photo_date(lift.started_at, batch.written_at or message.received_at)
        try:
            # Compared before anything is written: the file is the event's, and a wrong copy saved
            # then deleted took the right photo stored before with it (its row left pointing nowhere).
            if expected is not None and expected != (digest := hashlib.sha256(message.payload).hexdigest()):
                self.evidence.check(message.payload)  # no JPEG, too large: that reason first, as before
                raise Refused("evidence_mismatch", mismatch_detail(digest))
            photo = self.evidence.save(truck_id, event_id, message.payload)
        except EvidenceError as error:
            raise Refused(error.reason, str(error)) from None
        row = {"event_id": event_id, "truck_id": truck_id, "path": photo.path, "sha256": photo.sha256,
               "size_bytes": photo.size_bytes, "width": photo.width, "height": photo.height,
               "received_at": message.received_at}
        # The photo's retention counts from its first reception (docs/privacy.md): a truck sending it
        # again (a lost receipt, a redelivery) replaces the bytes, never that date.
        replaced = tuple(k for k in row if k not in ("event_id", "received_at"))
        session.execute(upsert(session, Evidence.__table__, ("event_id",), replace=replaced), [row])
        self.metrics.inc("trivue_ingest_evidence_stored_total")
        batch.seen(truck_id, message.received_at)

    def _flush(self, session: Session, batch: Batch) -> None:
        new = insert_lifts(session, batch.lifts)
        self.metrics.inc("trivue_ingest_lifts_stored_total", len(new))
        self.metrics.inc("trivue_ingest_lifts_duplicate_total", len(batch.lifts) - len(new))
        self.metrics.inc("trivue_ingest_lifts_unmatched_total", sum(r["street_id"] is None for r in new))
        self._note_agents(session, batch)
        # One statement per set of columns, not per truck: a batch from a fleet names dozens of
        # trucks. Sorted by truck: concurrent workers lock rows in one order.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for values in sorted(batch.trucks.values(), key=lambda v: v["truck_id"]):
            groups.setdefault(tuple(sorted(values)), []).append(values)
        for columns, rows in groups.items():
            updated = tuple(c for c in columns if c != "truck_id")
            session.execute(upsert(session, Truck.__table__, ("truck_id",), replace=updated), rows)
        if batch.dead:
            # Replayed letters carry their id, new ones get the next: one executemany per kind, as
            # its rows must all name the same columns.
            for rows in ([r for r in batch.dead if "id" in r], [r for r in batch.dead if "id" not in r]):
                if rows:
                    session.execute(DeadLetter.__table__.insert(), rows)
            for row in batch.dead:
                self.metrics.inc("trivue_ingest_dead_letters_total", reason=row["reason"])
                log.warning("dead letter (%s) on %s: %s", row["reason"], row["topic"], row["detail"][:200])

    @staticmethod
    def _note_agents(session: Session, batch: Batch) -> None:
        """Fold the batch's heartbeats into each truck's recent agent start times, read in one
        query. Two workers on one truck at once: the last write wins, and the next heartbeats of
        two agents show them again."""
        if not batch.beats:
            return
        stored = dict(session.execute(select(Truck.truck_id, Truck.agents)
                                      .where(Truck.truck_id.in_(sorted(batch.beats)))).all())
        for truck_id, beats in batch.beats.items():
            agents = stored.get(truck_id)
            for started, sent, received in beats:
                agents = note(agents, started, sent, received)
            batch.trucks[truck_id]["agents"] = agents


_KINDS: dict[str, Callable[..., None]] = {
    "lift": Inbox._lift, "stats": Inbox._stats, "status": Inbox._status, "evidence": Inbox._evidence,
}


def check_reason(reason: str | None) -> None:
    """A filter on a reason no dead letter can have is a typo: ValueError naming the known ones."""
    if reason and reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"reason {reason!r}: one of {', '.join(DEAD_LETTER_REASONS)}")


def newest_dead_letters(session: Session, reason: str | None = None, limit: int = 100
                        ) -> tuple[dict[str, int], list[LetterView]]:
    """(count per reason over all dead letters, the newest ``limit`` of them, of ``reason`` when
    given): what ``GET /api/dead-letters`` and ``trivue dead-letters list`` show."""
    check_reason(reason)
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    counts = dict(session.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason)
                               .order_by(DeadLetter.reason)).all())
    return counts, letter_views(session, query)
