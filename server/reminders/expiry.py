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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, delete, func, inspect, select
from sqlalchemy.orm import Session

from server.reminders.config import EffectRules
from server.reminders.letter_files import delete_letter
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
    return ReminderExpiry(count, false_detections, letters)
