"""Retention limits (GDPR/CNIL): raw lifts, photos, dead letters and audit entries are deleted when they expire;
the reminders' household-level data are pseudonymised (items) or deleted (false detections).
While ``household_level`` is off, each run also drops the bin tag and address that lifts stored
before still hold (``server.ingest.street_level.clear_stored``, at most ``STREET_LEVEL_PASS`` a run),
and lifts' dead letters go after ``street_level_letter_days``.

Street aggregates are kept: they are what the service is for and hold no household data. The
purge runs at start-up and hourly inside ``trivue server``; each run that deletes something is written
to the audit log.
On PostgreSQL, expired lifts go a whole month partition at a time (``DROP TABLE``, instant and
leaving no dead rows to vacuum), and only the month that straddles the limit is trimmed by
``DELETE``; the same hourly run creates the coming months' partitions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.audit import AuditEntry, audit
from server.config import ServerSettings
from server.db import utcnow
from server.ingest.evidence import EvidenceStore
from server.ingest.models import DeadLetter, Evidence, Lift
from server.ingest.partitions import drop_partitions_before, ensure_partitions, lock_upkeep
from server.ingest.purge_gate import wait_for_ingest
from server.ingest.street_level import clear_stored
from server.labels.store import forget
from server.periodic import Periodic
from server.reminders.expiry import expire_reminders
from server.web.auth import purge_sessions

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
# Lifts a run clears of their tag and address at most: it holds ingest off meanwhile (``purge_gate``);
# ~2.5 s on PostgreSQL (2 shared cores, docs/privacy.md §1 bis). A backlog (the first run after the
# upgrade) goes over the next runs, which follow at once while one finds this many (``RetentionTask``).
STREET_LEVEL_PASS = 50_000
LABELS = {"lift_tags": "lift tags and addresses"}


@dataclass(frozen=True, slots=True)
class PurgeReport:
    lifts: int
    photos: int
    dead_letters: int
    sessions: int
    audit_entries: int = 0
    reminder_items: int = 0  # household items pseudonymised (server.reminders.expiry)
    false_detections: int = 0
    reminder_letter_photos: int = 0  # stored letters whose purged photos were replaced
    reminder_stray_letters: int = 0  # letter files of erased, expired or unknown items deleted
    reminder_route_sheets: int = 0  # route sheets of campaigns that no longer name a household, deleted
    lift_tags: int = 0  # lifts whose bin tag and address were dropped (household level off), kept otherwise

    @property
    def total(self) -> int:
        return (self.lifts + self.photos + self.dead_letters + self.sessions + self.audit_entries
                + self.reminder_items + self.false_detections + self.reminder_letter_photos
                + self.reminder_stray_letters + self.reminder_route_sheets + self.lift_tags)

    def summary(self) -> str:
        """The non-zero counts in words, for the log line an operator reads ("149 lifts, 2 photos")."""
        return ", ".join(f"{count} {LABELS.get(name, name.replace('_', ' '))}"
                         for name, count in asdict(self).items() if count)


def _purge_photos(session: Session, evidence: EvidenceStore, before: datetime, lifts_before: datetime) -> int:
    expired_lifts = select(Lift.event_id).where(Lift.started_at < lifts_before)
    rows = session.execute(select(Evidence.event_id, Evidence.path).where(
        or_(Evidence.received_at < before, Evidence.event_id.in_(expired_lifts)))).all()
    for _event_id, path in rows:
        evidence.delete(path)
    for start in range(0, len(rows), 500):
        chunk = [event_id for event_id, _ in rows[start:start + 500]]
        session.execute(delete(Evidence).where(Evidence.event_id.in_(chunk)))
    forget(session, [event_id for event_id, _ in rows])  # a photo's labels go with it
    return len(rows)


def _purge_stray_files(session: Session, evidence: EvidenceStore, before: datetime) -> int:
    """Photo files older than the photo retention that no ``evidence`` row names: a photo written
    whose row was never committed (a batch that failed, stored as a dead letter) or a ``.part``
    left by a crash while writing. The row purge never sees them, so without this they stayed on
    disk for ever."""
    old = evidence.files_before(before.timestamp())
    named: set[str] = set()
    for start in range(0, len(old), 500):
        named.update(session.scalars(select(Evidence.path).where(Evidence.path.in_(old[start:start + 500]))))
    stray = [path for path in old if path not in named]
    for path in stray:
        evidence.delete(path)
    return len(stray)


def _photo_letter(settings: ServerSettings) -> ColumnElement[bool]:
    """A refused photo's letter: its first 4 KiB are the top of the picture (a letter in the
    hopper, a face), or all of it (held for a replay), so it goes with the photos' retention, not
    the dead letters' longer one."""
    prefix = settings.topic_prefix.rstrip("/") + "/"
    return and_(DeadLetter.topic.startswith(prefix, autoescape=True),
                DeadLetter.topic.contains("/evidence/", autoescape=True))


def _lift_letter(settings: ServerSettings) -> ColumnElement[bool]:
    """A lift's letter, parsed or not: its raw message holds the bin tag and the GPS fix."""
    prefix = settings.topic_prefix.rstrip("/") + "/"
    return and_(DeadLetter.topic.startswith(prefix, autoescape=True),
                DeadLetter.topic.endswith("/lift", autoescape=True))


def purge_expired(session: Session, evidence: EvidenceStore, settings: ServerSettings,
                  now: datetime | None = None) -> PurgeReport:
    """Delete what has outlived its retention period; the caller commits."""
    now = now or utcnow()
    lock_upkeep(session)  # PostgreSQL: one purge at a time across server processes, before it reads lifts
    # Ingest batches in flight commit first, and the next ones read the clock after this purge
    # commits: a copy of a lift purged here is then refused, not counted again (``purge_gate``).
    wait_for_ingest(session)
    lifts_before = now - timedelta(days=settings.retention_days)
    photos_before = now - timedelta(days=settings.evidence_retention_days)
    photos = _purge_photos(session, evidence, photos_before, lifts_before)
    photos += _purge_stray_files(session, evidence, photos_before)
    lifts = drop_partitions_before(session, lifts_before)
    lifts += session.execute(delete(Lift).where(Lift.started_at < lifts_before)).rowcount or 0
    dead_before = now - timedelta(days=settings.dead_letter_retention_days)
    # A refused lift's letter goes with the raw lifts, however late it came (``ingest.letters``).
    expired = [DeadLetter.received_at < dead_before, DeadLetter.lift_started_at < lifts_before,
               and_(_photo_letter(settings), DeadLetter.received_at < photos_before)]
    cleared = 0
    if not settings.household_level:  # docs/privacy.md §1 bis
        letters_before = now - timedelta(days=settings.street_level_letter_days)
        expired.append(and_(_lift_letter(settings), DeadLetter.received_at < letters_before))
        cleared = clear_stored(session, STREET_LEVEL_PASS)
    dead = session.execute(delete(DeadLetter).where(or_(*expired))).rowcount or 0
    reminders = expire_reminders(session, now, settings.reminder_retention_days, settings.data_dir / "reminders")
    # The audit log is purged before the purge writes its own entry: that entry is about this run
    # and must survive it.
    audit_before = now - timedelta(days=settings.audit_retention_days)
    audits = session.execute(delete(AuditEntry).where(AuditEntry.at < audit_before)).rowcount or 0
    report = PurgeReport(lifts, photos, dead, purge_sessions(session), audits, reminders.items,
                         reminders.false_detections, reminders.letter_photos, reminders.stray_letters,
                         reminders.route_sheets, cleared)
    if report.total:
        audit(session, "system", "retention.purge", detail=str(asdict(report)))
        log.info("retention: deleted %s", report.summary())
    if cleared >= STREET_LEVEL_PASS:
        log.info("retention: more lifts hold a tag or address, cleared by the next run")
    return report


class RetentionTask(Periodic):
    """Runs ``purge_expired`` now and then every ``interval_s`` until stopped."""

    def __init__(self, settings: ServerSettings, sessions: sessionmaker[Session], evidence: EvidenceStore,
                 interval_s: float = PURGE_EVERY_S) -> None:
        super().__init__("retention purge", interval_s, self.run_once, first_now=True)
        self.settings, self.sessions, self.evidence = settings, sessions, evidence

    def run_once(self) -> None:
        try:
            with self.sessions() as session, session.begin():
                ensure_partitions(session)
        except SQLAlchemyError:  # lifts still land in the default partition; the purge must run anyway
            log.exception("lifts partitions could not be created; purging all the same")
        while not self._stop.is_set():  # again at once while lifts tagged before are left (STREET_LEVEL_PASS)
            with self.sessions() as session, session.begin():
                report = purge_expired(session, self.evidence, self.settings)
            if report.lift_tags < STREET_LEVEL_PASS:
                break
