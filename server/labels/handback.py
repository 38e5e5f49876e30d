"""What an import may replace: labels coming back from Label Studio or CVAT answer an export.

The tool's file was made from the photos as ``trivue dataset export`` wrote them. A decision a
person took on a photo in the dashboard after that export (a box moved, a missed bag added) is not
in the file: replacing the photo's boxes with the file's silently took it back. Such photos are
left as they are and listed, unless the import is forced.

The export the file answers: its ``manifest.json`` when the import holds it (Trivue's own export,
labelled on its files), its ``exported_at`` for the photos it lists; otherwise the server's latest
export covering the photo's collection day (``dataset.export`` in the audit log, which names the
period). A photo no known export covered (labels made elsewhere, or an export older than the audit
log keeps) has no date to compare with: it is imported as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.ingest.models import Lift

PERIOD = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")  # the export's audit detail: "yolo, A..B, ..."


class ManifestError(ValueError):
    """A manifest.json whose export date cannot be read."""


@dataclass(frozen=True, slots=True)
class Later:
    """A person's decision on a photo after the export the import answers."""

    event_id: str
    who: str
    action: str
    at: datetime

    def __str__(self) -> str:
        return f"{self.event_id} ({self.who.split(':', 1)[-1]}: {self.action} at {self.at:%Y-%m-%d %H:%M} UTC)"


def manifest_export(content: bytes, where: str) -> tuple[datetime, set[str]]:
    """(``exported_at``, the event ids it lists) of an export's manifest.json."""
    try:
        manifest = json.loads(content)
        at = datetime.fromisoformat(manifest["exported_at"])
        events = {str(p["event_id"]) for p in manifest["photos"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as error:
        raise ManifestError(f"{where}: not the manifest of a `trivue dataset export` (exported_at, photos with "
                            f"their event_id): {error}") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), events


def _exports(session: Session) -> list[tuple[datetime, date, date]]:
    """(when, first day, last day) of every export the audit log records."""
    found = []
    for at, detail in session.execute(select(AuditEntry.at, AuditEntry.detail)
                                      .where(AuditEntry.action == "dataset.export")):
        period = PERIOD.search(detail or "")
        if period:
            found.append((at, date.fromisoformat(period[1]), date.fromisoformat(period[2])))
    return found


def answered(session: Session, lifts: list[Lift],
             manifest: tuple[datetime, set[str]] | None) -> dict[str, datetime]:
    """The time of the export each photo's labels answer; photos no known export covered are left out."""
    exports = _exports(session)
    times: dict[str, datetime] = {}
    for lift in lifts:
        if manifest is not None and lift.event_id in manifest[1]:
            times[lift.event_id] = manifest[0]
            continue
        covering = [at for at, first, last in exports if first <= lift.day <= last]
        if covering:
            times[lift.event_id] = max(covering)
    return times


def decided_since(session: Session, since: dict[str, datetime]) -> dict[str, Later]:
    """Each photo's latest decision a person took in the dashboard (or through the API) after its time
    in ``since``, from the audit log: an undo is a decision too. Imports are not."""
    found: dict[str, Later] = {}
    events = sorted(since)
    if not since:
        return found
    floor = min(since.values())  # the audit log is long (every photo viewed is in it): only what came after
    for start in range(0, len(events), 500):
        chunk = events[start:start + 500]
        query = (select(AuditEntry.target, AuditEntry.actor, AuditEntry.action, AuditEntry.at)
                 .where(AuditEntry.target.in_(chunk), AuditEntry.action.like("labels.%"),
                        AuditEntry.action != "labels.import", AuditEntry.at > floor).order_by(AuditEntry.at))
        for target, actor, action, at in session.execute(query):
            if at > since[target]:
                found[target] = Later(target, actor, action.removeprefix("labels."), at)
    return found
