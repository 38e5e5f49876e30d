"""Retention of the reminders' household-level data (GDPR), run by the server's hourly purge.

A campaign's household items hold a household key (``address:<id>``, ``bin:<tag>``), its address
and bin, the evidence lifts' ids, the reviewer's note and the delivery detail (an SMTP reply can
quote the e-mail address; a letter's file names the household), next to its contamination counts.
Kept without limit, they outlived the lifts they were made from (``retention_days``).

Once a campaign has been quiet for ``reminder_retention_days`` (365 by default; counted from its
last send, review or creation) **and** its effect window is over (the last send, plus the
campaign's own ``effect.washout_days`` and ``effect.window_days``: the before/after report of a
campaign still being measured never loses its households), its household items are
pseudonymised as an erasure on request does (``server.reminders.households.erase_household``):
the key becomes ``expired:<item id>``, the address, bin, lift ids, note, delivery detail and
Message-ID go, the household letter file is deleted, an unsent item is set aside. Street and
thank-you items, counts, levels, statuses, channels and dates stay: the campaign's figures and
the audit trail. The campaign's record of its rules loses its excluded addresses and bins.

False detections (``reminder_false_detections``: a lift id, the item, the reviewer's note) are
deleted ``reminder_retention_days`` after they were reported: their photo went long before
(``evidence_retention_days``) and their lift with ``retention_days``.

Letter files left behind (``delete_stray_letters``): before 2026-12-05 a letter's path was recorded
relative to the directory of the send, and an erasure run from another directory did not find it,
so the household's letter stayed in ``<data_dir>/reminders/campagne-<c>/`` after its item had
forgotten it. Each purge deletes there every household letter (``letter_files.LETTER_FILE``) whose
item is erased or expired, at once, and one no item of its campaign names once it is older than
``reminder_retention_days`` (a database restored or replaced must not cost the letters of live
items their files within the hour). A live item's file is never touched, nor anything but a letter.

Route sheets (``feuille-de-route-campagne-<c>.pdf``, the addresses of the households to visit) go
with their campaign's households: each purge deletes the sheet of a campaign whose household items
no longer name anyone, at once (``server.reminders.route_sheets.delete_forgotten_sheets``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, delete, func, inspect, select
from sqlalchemy.orm import Session

from server.reminders.config import EffectRules
from server.reminders.letter_files import CAMPAIGN_FOLDER, delete_letter, letter_ids
from server.reminders.letter_photos import forget_purged_photos
from server.reminders.models import (
    APPROVED,
    FAILED,
    HOUSEHOLD,
    PENDING,
    RETRY,
    SENDING,
    SKIPPED,
    Campaign,
    FalseDetection,
    Item,
)
from server.reminders.route_sheets import delete_forgotten_sheets

log = logging.getLogger(__name__)

EXPIRED_PREFIX = "expired:"
ERASED_PREFIX = "erased:"  # server.reminders.households.erase_household: nothing left to expire
EXPIRED_DETAIL = "données expirées (durée de conservation)"
# Not sent, and never to be once the household's data are gone (a stale claim of a killed send too).
UNSENT = (PENDING, APPROVED, RETRY, FAILED, SENDING)


@dataclass(frozen=True, slots=True)
class ReminderExpiry:
    items: int  # household items pseudonymised
    false_detections: int  # deleted
    letter_photos: int = 0  # stored letters whose purged photos were replaced (server.reminders.letter_photos)
    stray_letters: int = 0  # letter files of erased, expired or unknown items deleted (delete_stray_letters)
    route_sheets: int = 0  # route sheets of campaigns that no longer name a household, deleted


def _identified() -> list[ColumnElement[bool]]:
    """Household items that still name their household."""
    return [Item.kind == HOUSEHOLD, ~Item.target_key.startswith(EXPIRED_PREFIX),
            ~Item.target_key.startswith(ERASED_PREFIX)]


def effect_end(campaign: Campaign, last_send: datetime | None) -> datetime | None:
    """When the campaign's effect report stops taking lifts: its last send plus the campaign's own
    washout and window (recorded with its rules; today's defaults for an older record)."""
    last = max((at for at in (last_send, campaign.started_at) if at is not None), default=None)
    if last is None:
        return None
    recorded = (campaign.rules or {}).get("effect") or {}
    defaults = EffectRules()
    window = recorded.get("window_days", defaults.window_days)
    washout = recorded.get("washout_days", defaults.washout_days)
    return last + timedelta(days=float(window) + float(washout))


def _expired_campaigns(session: Session, now: datetime, days: int) -> list[Campaign]:
    live = select(Item.campaign_id).where(*_identified()).distinct()
    rows = session.execute(select(Item.campaign_id, func.max(Item.sent_at), func.max(Item.reviewed_at))
                           .where(Item.campaign_id.in_(live)).group_by(Item.campaign_id)).all()
    expired = []
    for campaign_id, last_send, last_review in rows:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            continue
        moments = [at for at in (campaign.created_at, campaign.started_at, last_send, last_review) if at is not None]
        end = effect_end(campaign, last_send)
        if max(moments) + timedelta(days=days) <= now and (end is None or end <= now):
            expired.append(campaign)
    return expired


def _pseudonymise(item: Item, letters_root: Path | None) -> None:
    removal = delete_letter(item, letters_root)
    if removal.problem:  # the expiry goes on: the item must not keep naming its household for a file
        log.warning("reminder item %s expired: %s", item.id, removal.problem)
    item.forget_household(EXPIRED_PREFIX)
    item.review_note = item.message_id = None
    # A delivery detail quotes the address, the relay's reply or the letter's file: only the fact stays.
    item.send_detail = EXPIRED_DETAIL if item.status in UNSENT else None
    if item.status in UNSENT:
        item.status = SKIPPED


def expire_reminders(session: Session, now: datetime, days: int,
                     letters_root: Path | None = None) -> ReminderExpiry:
    """Pseudonymise the household items of campaigns past their retention and effect window, delete
    false detections past their retention; the caller commits. Nothing when the reminders' tables
    were never created (a server that never mounted them)."""
    if not inspect(session.connection()).has_table(Item.__tablename__):
        return ReminderExpiry(0, 0)
    reported_before = now - timedelta(days=days)
    false_detections = session.execute(
        delete(FalseDetection).where(FalseDetection.reported_at < reported_before)).rowcount or 0
    count = 0
    for campaign in _expired_campaigns(session, now, days):
        for item in session.scalars(select(Item).where(Item.campaign_id == campaign.id, *_identified())):
            _pseudonymise(item, letters_root)
            count += 1
        exclude = (campaign.rules or {}).get("exclude")
        if exclude and (exclude.get("addresses") or exclude.get("bins")):  # they name households too
            campaign.rules = {**campaign.rules, "exclude": {**exclude, "addresses": [], "bins": []}}
    session.flush()
    # After the items' expiry: a letter deleted with its item needs no rewriting.
    letters = forget_purged_photos(session, letters_root)
    session.flush()
    return ReminderExpiry(count, false_detections, letters, delete_stray_letters(session, letters_root, now, days),
                          delete_forgotten_sheets(session, letters_root, now, days))


def _letter_files(letters_root: Path) -> Iterator[tuple[int, int, Path]]:
    """(campaign id, item id, path) of each household letter in a campaign's folder of ``letters_root``
    named for that campaign; links are not followed (a link is nobody's letter)."""
    with os.scandir(letters_root) as folders:
        for folder in folders:
            match = CAMPAIGN_FOLDER.fullmatch(folder.name)
            if match is None or not folder.is_dir(follow_symlinks=False):
                continue
            with os.scandir(folder.path) as files:
                for entry in files:
                    ids = letter_ids(entry.name)
                    if ids is not None and ids[0] == int(match[1]) and entry.is_file(follow_symlinks=False):
                        yield ids[0], ids[1], Path(entry.path)


def delete_stray_letters(session: Session, letters_root: Path | None, now: datetime, days: int) -> int:
    """Delete the letter files under ``letters_root`` of items erased or expired, and those no item of
    their campaign names once older than ``days``; the number deleted (see the module's docstring)."""
    if letters_root is None or not letters_root.is_dir() \
            or not inspect(session.connection()).has_table(Item.__tablename__):
        return 0
    found = list(_letter_files(letters_root))
    items: dict[int, tuple[int, str]] = {}  # item id -> (campaign id, key)
    wanted = sorted({item_id for _campaign, item_id, _path in found})
    for start in range(0, len(wanted), 500):
        items.update((i, (c, k)) for i, c, k in session.execute(
            select(Item.id, Item.campaign_id, Item.target_key).where(Item.id.in_(wanted[start:start + 500]))))
    old = (now - timedelta(days=days)).timestamp()
    deleted = 0
    for campaign_id, item_id, path in found:
        owner = items.get(item_id)
        if owner is not None and owner[0] == campaign_id:
            if not owner[1].startswith((ERASED_PREFIX, EXPIRED_PREFIX)):
                continue  # a live item's letter: the mail room may still print it
        else:  # no item names it: only once past the retention (see above)
            try:
                if path.stat().st_mtime >= old:
                    continue
            except FileNotFoundError:
                continue
        try:
            path.unlink(missing_ok=True)
            deleted += 1
        except OSError as error:  # tried again by the next purge
            log.warning("reminder letter %s not deleted: %s", path, error)
    if deleted:
        log.info("reminders: %d letter %s of erased, expired or unknown items deleted", deleted,
                 "file" if deleted == 1 else "files")
    return deleted
