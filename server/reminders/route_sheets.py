"""The ambassadeurs' route sheets a send leaves on disk, and what erasure and expiry do to them.

A send writes ``<out>/feuille-de-route-campagne-<c>.pdf`` (``server.reminders.dispatch``; ``<out>`` is
``<data_dir>/reminders/campagne-<c>`` unless ``trivue reminders send --out DIR``) and records its path
in the audit log (``reminders.route_sheet.export``, absolute since 2026-12-06). The sheet lists the
addresses of the households to visit, so:

- an erasure on request rewrites each of the server's sheets that listed the household, from the
  campaign's items as they now are, or deletes it when nobody is left to visit; a sheet outside the
  server's folder is the operator's and is reported with its path, as one found nowhere is;
- the hourly purge deletes a sheet once its campaign's household items no longer name anyone
  (pseudonymised by the retention's expiry, or all erased), and one whose campaign is unknown once
  older than ``reminder_retention_days`` (a restored database must not cost a live sheet). Only the
  sheet's own name in its campaign's folder is touched; links are not followed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.reminders.campaigns import items_of
from server.reminders.letter_files import CAMPAIGN_FOLDER, in_server_folder
from server.reminders.letters import route_sheet_pdf
from server.reminders.models import APPROVED, HOUSEHOLD, SENT, Campaign, Item
from server.reminders.templates import french_date
from server.reminders.walking_route import route_streets

log = logging.getLogger(__name__)

EXPORT_ACTION = "reminders.route_sheet.export"
NAMED = ("address:", "bin:")  # keys that still name a household (not ``erased:``/``expired:``)


def sheet_name(campaign_id: int) -> str:
    return f"feuille-de-route-campagne-{campaign_id}.pdf"


def sheet_pdf(session: Session, campaign: Campaign) -> bytes | None:
    """The campaign's route sheet from its items as they are now; None when it has nothing to list."""
    streets = route_streets(session, items_of(session, campaign.id))
    if not streets:
        return None
    period = f"{french_date(campaign.since)} au {french_date(campaign.until)}"
    return route_sheet_pdf(campaign.name, period, streets)


def on_sheet(item: Item) -> bool:
    """The item is a visit a route sheet lists (``walking_route.route_streets``)."""
    return item.kind == HOUSEHOLD and item.level >= 3 and item.status in (APPROVED, SENT)


@dataclass(slots=True)
class SheetUpdate:
    rewritten: int = 0  # sheets rewritten without the household, or deleted with nobody left to visit
    problems: list[str] = field(default_factory=list)  # sheets not rewritten: where, and why


def _recorded(session: Session, campaign_id: int) -> list[Path]:
    """Paths the sends of the campaign wrote its sheet to (the API's download records none)."""
    return [Path(d) for d in session.scalars(select(AuditEntry.detail).where(
        AuditEntry.action == EXPORT_ACTION, AuditEntry.target == f"campaign:{campaign_id}",
        AuditEntry.detail.is_not(None)).distinct())]


def rewrite_sheets(session: Session, campaign_ids: Iterable[int], letters_root: Path | None) -> SheetUpdate:
    """Rewrite the server's route sheets of these campaigns from their items (flushed by the caller
    once the household is forgotten); delete one with nothing left to list. See the module docstring."""
    update = SheetUpdate()
    if letters_root is None:
        return update
    for campaign_id in sorted(set(campaign_ids)):
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            continue
        own = letters_root / f"campagne-{campaign_id}" / sheet_name(campaign_id)
        seen: set[Path] = set()
        own_found = own.is_file() and not own.is_symlink()
        for path in (own, *_recorded(session, campaign_id)):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if path.is_symlink() or not path.is_file():
                # A relative path recorded before 2026-12-06 is the server's own sheet when that was found.
                if path != own and (path.is_absolute() or not own_found):
                    where = "" if path.is_absolute() else \
                        f" (chemin relatif au dossier du serveur, cherché depuis {Path.cwd()})"
                    update.problems.append(f"feuille de route introuvable : {path}{where}")
                continue
            if not in_server_folder(path, sheet_name(campaign_id), campaign_id, letters_root):
                update.problems.append(f"feuille de route hors du dossier du serveur, non réécrite : {path.absolute()}")
                continue
            pdf = sheet_pdf(session, campaign)
            if pdf is None:
                path.unlink(missing_ok=True)
            else:
                part = path.with_name(f".{path.name}.partiel")  # never a half-written sheet in its place
                part.write_bytes(pdf)
                part.replace(path)
            update.rewritten += 1
    return update


def delete_forgotten_sheets(session: Session, letters_root: Path | None, now: datetime, days: int) -> int:
    """Delete the route sheets whose campaign's household items no longer name anyone, and those of
    unknown campaigns once older than ``days``; the number deleted (see the module docstring)."""
    if letters_root is None or not letters_root.is_dir():
        return 0
    old, deleted = (now - timedelta(days=days)).timestamp(), 0
    with os.scandir(letters_root) as folders:
        found = [(int(m[1]), Path(f.path) / sheet_name(int(m[1]))) for f in folders
                 if (m := CAMPAIGN_FOLDER.fullmatch(f.name)) and f.is_dir(follow_symlinks=False)]
    for campaign_id, path in found:
        if path.is_symlink() or not path.is_file():
            continue
        if session.get(Campaign, campaign_id) is None:
            if path.stat().st_mtime >= old:
                continue
        else:
            households = select(Item.id).where(Item.campaign_id == campaign_id, Item.kind == HOUSEHOLD)
            if session.scalar(households.limit(1)) is None or session.scalar(households.where(
                    or_(*(Item.target_key.startswith(p) for p in NAMED))).limit(1)) is not None:
                continue  # a street campaign names nobody; a live one keeps its sheet
        try:
            path.unlink(missing_ok=True)
            deleted += 1
        except OSError as error:  # tried again by the next purge
            log.warning("route sheet %s not deleted: %s", path, error)
    return deleted
