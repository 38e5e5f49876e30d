"""Privacy by design, as far as the code can prove it: retention with a fake clock, defaults.

The figures are those of docs/privacy.md; a change of default there and here go together.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from edge.config import EvidenceSettings
from server.audit import AuditEntry, audit
from server.db import utcnow
from server.ingest.models import DeadLetter, Evidence, Lift, StreetDay
from server.retention import purge_expired
from tests.security.harness import PREFIX, Harness
from tests.security.test_hostile_input import files_under, jpeg
from tests.server.events import lift_event


def rows(harness: Harness, table: type) -> int:
    with harness.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def purge(harness: Harness, days: float) -> None:
    with harness.sessions() as session, session.begin():
        purge_expired(session, harness.evidence, harness.settings, now=utcnow() + timedelta(days=days))


def test_household_level_data_expires_street_aggregates_stay(harness: Harness) -> None:
    photo = jpeg()
    event = lift_event("truck-a", counts={"battery": 1},
                       evidence={"sha256": hashlib.sha256(photo).hexdigest(), "width": 64, "height": 48})
    harness.write([(f"{PREFIX}/truck-a/lift", event.to_json().encode()),
                   (f"{PREFIX}/truck-a/evidence/{event.event_id}", photo),
                   (f"{PREFIX}/truck-a/nonsense", b"x")])
    assert (rows(harness, Lift), rows(harness, Evidence), rows(harness, DeadLetter)) == (1, 1, 1)
    settings = harness.settings
    purge(harness, settings.evidence_retention_days - 1)  # nothing has expired yet
    assert (rows(harness, Evidence), len(files_under(settings.evidence_path))) == (1, 1)
    purge(harness, settings.evidence_retention_days + 1)  # the photo goes first, file and row
    assert (rows(harness, Lift), rows(harness, Evidence), len(files_under(settings.evidence_path))) == (1, 0, 0)
    purge(harness, settings.dead_letter_retention_days + 1)
    assert rows(harness, DeadLetter) == 0
    purge(harness, settings.retention_days + 1)
    assert rows(harness, Lift) == 0
    assert rows(harness, StreetDay) == 1  # street-level statistics are not personal data: kept


def test_server_retention_defaults_are_those_of_the_privacy_notice(harness: Harness) -> None:
    settings = harness.settings
    assert (settings.evidence_retention_days, settings.retention_days, settings.dead_letter_retention_days,
            settings.session_hours, settings.audit_retention_days) == (30, 365, 90, 12, 365)


def test_truck_photos_are_kept_seven_days_by_default() -> None:
    assert EvidenceSettings().retention_days <= 7


def test_audit_entries_expire(harness: Harness) -> None:
    with harness.sessions() as session, session.begin():
        audit(session, "user:x", "login.failed", detail="203.0.113.7")
    purge(harness, harness.settings.audit_retention_days - 1)  # not yet: a year of history is kept
    with harness.sessions() as session:
        assert "203.0.113.7" in session.scalars(select(AuditEntry.detail)).all()
    purge(harness, 2 * 365)
    assert rows(harness, AuditEntry) <= 1  # the purge's own entry at most
    with harness.sessions() as session:
        details = session.scalars(select(AuditEntry.detail)).all()
    assert "203.0.113.7" not in details


def test_photo_paths_hold_only_the_truck_and_the_random_event_id(harness: Harness) -> None:
    """A file listing of the evidence folder tells no address, street or time."""
    photo, event_id = jpeg(), uuid.uuid4()
    harness.write([(f"{PREFIX}/truck-a/evidence/{event_id}", photo)])
    (path,) = files_under(harness.settings.evidence_path)
    assert path.relative_to(harness.settings.evidence_path).as_posix() == \
        f"truck-a/{str(event_id)[:2]}/{event_id}.jpg"
