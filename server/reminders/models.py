"""The reminders' tables: contacts (personal data), opt-outs, campaigns, items, false detections.

They live on their own metadata and Alembic history (``server/reminders/migrations``, version table
``alembic_version_reminders``) so the reminders can evolve without touching the core server's
migrations. Personal data (names, e-mails, phone numbers) sits in ``reminder_contacts`` only, apart
from lift data, keyed by the household key (``address:<id>`` or ``bin:<rfid>``): deleting a
household's data deletes that row and nothing the statistics rely on.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Date, Engine, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.db import UtcDateTime, utcnow
from server.migrate import migration_transaction

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version_reminders"



class ItemKind(StrEnum):
    """Who an item is addressed to: one household, a whole street (a notice), or a thank-you."""

    household = "household"
    street = "street"
    thanks = "thanks"


class ItemStatus(StrEnum):
    """An item's life: pending review -> approved or rejected -> sending -> sent, retry, failed or skipped.

    ``sending``: claimed by one send, in the hands of a channel; ``retry``: a temporary failure that
    the next send after ``next_attempt_at`` tries again (``server.reminders.sending``).
    """

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    sending = "sending"
    sent = "sent"
    retry = "retry"
    failed = "failed"
    skipped = "skipped"


class Channel(StrEnum):
    """How an item went out; ``print`` is a street notice or thank-you printed for posting."""

    email = "email"
    sms = "sms"
    letter = "letter"
    print = "print"


# Item kinds and statuses, also used by the API and the page.
HOUSEHOLD, STREET, THANKS = ItemKind
PENDING, APPROVED, REJECTED, SENDING, SENT, RETRY, FAILED, SKIPPED = ItemStatus
STATUSES = tuple(ItemStatus)
# The words of the page (templates/reminders/i18n/fr.json "rem.status.*"), for the CLI and messages.
STATUS_LABELS = {PENDING: "à relire", APPROVED: "approuvé", REJECTED: "refusé", SENDING: "envoi en cours",
                 SENT: "envoyé", RETRY: "nouvel essai prévu", FAILED: "échec", SKIPPED: "écarté"}
KIND_LABELS = {HOUSEHOLD: "foyer", STREET: "rue", THANKS: "remerciement"}
CHANNEL_LABELS = {Channel.email: "courriel", Channel.sms: "SMS", Channel.letter: "courrier",
                  Channel.print: "avis imprimé"}
REJECT_REASONS = ("false_detection", "wrong_household", "not_appropriate", "other")


class RemindersBase(DeclarativeBase):
    pass


class Contact(RemindersBase):
    """How to reach a household: personal data, managers only, deleted on request."""

    __tablename__ = "reminder_contacts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True, doc="address:<id> or bin:<rfid>")
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    postal_address: Mapped[str | None] = mapped_column(String(300), doc="When the key is a bin without address")
    source: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OptOut(RemindersBase):
    """A household that asked not to receive reminders; holds no personal data, only the key."""

    __tablename__ = "reminder_optouts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class Campaign(RemindersBase):
    __tablename__ = "reminder_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    since: Mapped[date] = mapped_column(Date, doc="First day of the lifts the plan looked at")
    until: Mapped[date] = mapped_column(Date, doc="Last day of the lifts the plan looked at (inclusive)")
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, doc="The targeting rules used, for the record")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="First send: the effect's cut-off")
    controls: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="Comparison streets matched when the campaign was sent, frozen (server.reminder_matching)")


class Item(RemindersBase):
    """One message to one household or one street, waiting for a person's decision."""

    __tablename__ = "reminder_items"
    __table_args__ = (Index("ix_reminder_items_target", "target_key", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("reminder_campaigns.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer, doc="1 information, 2 rappel, 3 visite; 0 for thanks")
    target_key: Mapped[str] = mapped_column(String(80))
    street_id: Mapped[int | None] = mapped_column(Integer)
    address_id: Mapped[int | None] = mapped_column(Integer)
    bin_id: Mapped[str | None] = mapped_column(String(64))
    lifts: Mapped[int] = mapped_column(Integer)
    contaminated: Mapped[int] = mapped_column(Integer)
    unattributed: Mapped[int | None] = mapped_column(
        Integer, doc="Street items: contaminated lifts without a sure household (route sheet); None before r0005")
    unattributed_categories: Mapped[dict[str, int] | None] = mapped_column(
        JSON(none_as_null=True), doc="Street items: error category -> those lifts without a sure household "
                                     "(route sheet); None before r0006")
    streams: Mapped[dict[str, int] | None] = mapped_column(
        JSON(none_as_null=True), doc="stream -> contaminated lifts, most first (route sheet): a household's, a "
                                     "street's without a sure household; None before r0008 and for thanks")
    categories: Mapped[dict[str, int]] = mapped_column(JSON, doc="error category -> contaminated lifts")
    event_ids: Mapped[list[str]] = mapped_column(JSON, doc="Evidence lifts shown to the reviewer")
    reason: Mapped[str] = mapped_column(Text, doc="Why the rules chose this target, in French")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    review_reason: Mapped[str | None] = mapped_column(String(32))
    review_note: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    send_detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", doc="Delivery attempts so far")
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="When a send claimed the item")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Retry after a temporary failure")
    message_id: Mapped[str | None] = mapped_column(String(200), doc="Stable e-mail Message-ID (resent alike)")
    letter_photos: Mapped[dict[str, str] | list[str] | None] = mapped_column(
        JSON(none_as_null=True), doc="Photos the server's copy of the letter still holds: {lift: sha256}, "
                                     "or a list of lifts (sent before 2026-12) (server.reminders.letter_photos); "
                                     "NULL: none")
    printed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="First put in a print file for the mail room")
    printed_by: Mapped[str | None] = mapped_column(String(128), doc="Who made that print file")

    def forget_household(self, prefix: str) -> None:
        """The item no longer names its household: key ``<prefix><id>``, no address, bin or lifts
        (an erasure on request, ``erased:``; the retention's expiry, ``expired:``)."""
        self.target_key = f"{prefix}{self.id}"
        self.address_id = self.bin_id = None
        self.event_ids = []
        self.letter_photos = None  # its letter is deleted with it


class FalseDetection(RemindersBase):
    """A lift a reviewer judged wrongly flagged: material for the next training round."""

    __tablename__ = "reminder_false_detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    truck_id: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(64))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(128))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def upgrade_reminders(engine: Engine) -> None:
    """Create or upgrade the reminders' tables (the core schema must exist already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with migration_transaction(engine) as connection:  # a cut-short upgrade leaves no half schema
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
