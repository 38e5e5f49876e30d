"""Exactly-once sending: each item is claimed by one send before any channel sees it.

A claim is one conditional ``UPDATE`` (``approved`` or a due ``retry`` -> ``sending``), committed
before the channel is called. Two sends at once (two processes, two threads, two servers) both
try it; the database lets exactly one of them change the row (PostgreSQL re-checks the condition
after the other's commit, SQLite serialises writers), and the loser moves on to the next item.

A send killed after its claim leaves the item in ``sending``. Once the claim is older than the
lease (``channels.sending_lease_s``), the next send takes it over (again one conditional update)
and resolves it by the channel's own rule:

- e-mail is sent again with the **same Message-ID**, recorded before the first attempt; mail
  stores and clients keep one copy of messages sharing a Message-ID;
- letters and notices are files: writing the same file again is harmless;
- SMS have no such key: **at most once**. The item is marked failed ("interrompu") and only a
  person's explicit retry sends it again, knowing a resident may get it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from server.audit import audit
from server.reminders.config import RemindersConfig, RetryRules
from server.reminders.models import APPROVED, FAILED, HOUSEHOLD, RETRY, SENDING, Campaign, Contact, Item
from server.reminders.sms_text import mobile

NO_CONTACT = "aucune coordonnée"
# What a send hands to a channel without a person's further word: approved items, retries (their
# time comes by itself) and claims of a killed send (taken over). The household-level switch must
# hold them all back, not approved items only.
OUTGOING = (APPROVED, RETRY, SENDING)


def due_items(session: Session, campaign_id: int, now: datetime) -> list[int]:
    """Ids of the approved items and of the retries whose time has come, in order."""
    return list(session.scalars(select(Item.id).where(
        Item.campaign_id == campaign_id,
        or_(Item.status == APPROVED, (Item.status == RETRY) & (Item.next_attempt_at <= now))).order_by(Item.id)))


def stale_items(session: Session, campaign_id: int, now: datetime, lease_s: int) -> list[int]:
    """Ids of items claimed longer than the lease ago by a send that never recorded an outcome."""
    return list(session.scalars(select(Item.id).where(
        Item.campaign_id == campaign_id, Item.status == SENDING,
        Item.claimed_at < now - timedelta(seconds=lease_s)).order_by(Item.id)))


def claim(session: Session, item_id: int, now: datetime) -> bool:
    """Take the item for this send; True for exactly one of any number of concurrent callers."""
    won = session.execute(
        update(Item).where(Item.id == item_id, or_(Item.status == APPROVED,
                                                   (Item.status == RETRY) & (Item.next_attempt_at <= now)))
        .values(status=SENDING, claimed_at=now, attempts=Item.attempts + 1, next_attempt_at=None)
        .execution_options(synchronize_session=False)).rowcount == 1
    session.commit()  # the claim must be visible to the other senders before any channel is called
    return won


def take_over(session: Session, item_id: int, now: datetime, lease_s: int) -> bool:
    """Take a stale ``sending`` item over from a send that died; True for exactly one caller."""
    won = session.execute(
        update(Item).where(Item.id == item_id, Item.status == SENDING,
                           Item.claimed_at < now - timedelta(seconds=lease_s))
        .values(claimed_at=now, attempts=Item.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    session.commit()
    return won


def backoff(attempts: int, rules: RetryRules) -> timedelta:
    """Wait before attempt ``attempts + 1``: first_delay_s, doubled each time, at most max_delay_s."""
    return timedelta(seconds=min(rules.first_delay_s * 2 ** max(attempts - 1, 0), rules.max_delay_s))


def mark_started(session: Session, campaign_id: int, at: datetime) -> None:
    """The campaign's first send time, set once whoever sends first (a conditional update, no race)."""
    session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.started_at.is_(None))
                    .values(started_at=at).execution_options(synchronize_session=False))


def requeue(session: Session, campaign_id: int, actor: str, item_id: int | None = None) -> list[int]:
    """Failed items (and waiting retries) back to ``approved`` for the next send; the caller commits."""
    query = select(Item).where(Item.campaign_id == campaign_id, Item.status.in_((FAILED, RETRY)))
    if item_id is not None:
        query = query.where(Item.id == item_id)
    items = list(session.scalars(query.order_by(Item.id)))
    for item in items:
        item.status, item.next_attempt_at = APPROVED, None
        audit(session, actor, "reminders.item.retry", f"item:{item.id}", (item.send_detail or "")[:500])
    return [item.id for item in items]


def planned_channel(item: Item, contact: Contact | None, config: RemindersConfig, postal: bool) -> str | None:
    """The channel a send would use for ``item`` now; None: the household cannot be reached.

    ``postal``: a postal address is known (the contact's, or the matched address's label).
    """
    if item.kind != HOUSEHOLD:
        return "print"
    channels = config.channels
    for channel in channels.order:
        if channel == "email" and contact and contact.email and channels.smtp:
            return "email"
        if channel == "sms" and contact and contact.phone and channels.sms \
                and mobile(contact.phone, channels.sms.country_code):  # a landline: the next channel
            return "sms"
        if channel == "letter" and postal:
            return "letter"
    return None
