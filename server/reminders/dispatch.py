"""Sending a campaign: only approved items, each through the first channel the household can be
reached by (e-mail, SMS, printed letter), street notices and thank-you notices as PDFs to print,
and the ambassadeurs' route sheet. Every send is in the audit log, with its channel.

Checked again at send time: the household's opt-out and the quiet periods (an approved item
waits for the end of a quiet period), and an SMS's hours (``server.reminders.sms_hours``: an SMS
item outside them stays approved for the next send). Each item is claimed before it is sent, so it goes out
once however many sends run (``server.reminder_sending``). A temporary failure puts the item in
``retry`` with a back-off; a permanent one marks it ``failed`` with the reason; the campaign goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.ingest.models import Evidence
from server.reminders import sms_hours
from server.reminders.campaigns import get_campaign, items_of
from server.reminders.channels import Attachment, ChannelError, Mailer, SmsGateway
from server.reminders.config import RemindersConfig
from server.reminders.effect import freeze_controls
from server.reminders.letter_photos import photos_held
from server.reminders.letters import LetterError, LetterHeader, letter_pdf, route_sheet_pdf
from server.reminders.models import FAILED, HOUSEHOLD, RETRY, SENT, SKIPPED, Campaign, Contact, Item, OptOut
from server.reminders.postal import AddressError, address_block
from server.reminders.route_sheets import sheet_name
from server.reminders.sending import (
    NO_CONTACT,
    backoff,
    claim,
    due_items,
    mark_started,
    planned_channel,
    stale_items,
    take_over,
)
from server.reminders.sms_text import gsm_text, segments
from server.reminders.templates import (
    MessageTemplates,
    Retention,
    TemplateData,
    TemplateError,
    french_date,
    plain_text,
)
from server.reminders.typography import french_spacing
from server.reminders.walking_route import route_streets
from server.streets.models import Address, Street
from vision.rules import SortingRules

log = logging.getLogger(__name__)


def reference(item: Item) -> str:
    """What a resident quotes to opt out or ask a question: names the item, not the household."""
    return f"R{item.campaign_id}-{item.id}"


@dataclass(slots=True)
class SendReport:
    sent: dict[str, int] = field(default_factory=dict)  # channel -> items
    failed: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)  # temporary failures, tried again by a later send
    skipped: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # SMS held until the sending hours (still approved)
    recovered: list[str] = field(default_factory=list)  # items a killed send had left in ``sending``
    deferred: str | None = None
    files: list[Path] = field(default_factory=list)
    remaining: int = 0  # due items a send stopped by its deadline left for the next call


NO_NAME = "Aux occupants"
INTERRUPTED_SMS = ("envoi interrompu : le SMS est peut-être parti ; il n'est pas renvoyé automatiquement "
                   "(au plus une fois). « Réessayer » l'enverra de nouveau.")


@dataclass(slots=True)
class Dispatcher:
    session: Session
    config: RemindersConfig
    evidence_root: Path
    out_dir: Path
    actor: str
    today: date = field(default_factory=date.today)
    clock: Callable[[], datetime] = utcnow
    # By name: the targeting config beside it is called rules too. The server's sorting_rules.
    sorting_rules: SortingRules = field(kw_only=True)
    zone: ZoneInfo = field(default=ZoneInfo("Europe/Paris"), kw_only=True)  # the server's, for SMS hours
    retention: Retention = field(default_factory=Retention, kw_only=True)  # the server's, for the data notice
    templates: MessageTemplates = field(init=False)
    mailer: Mailer | None = field(init=False)
    sms: SmsGateway | None = field(init=False)

    def __post_init__(self) -> None:
        self.templates = MessageTemplates(self.config, self.sorting_rules, self.retention)
        self.mailer = Mailer(self.config.channels.smtp) if self.config.channels.smtp else None
        self.sms = SmsGateway(self.config.channels.sms) if self.config.channels.sms else None

    def send_campaign(self, campaign_id: int, deadline: float | None = None,
                      progress: Callable[[int, int], None] | None = None) -> SendReport:
        """Send the approved items (and the retries that are due) of a campaign.

        Each item is claimed, then its outcome committed, one at a time (``server.reminder_sending``):
        a concurrent send never gets the same item, and a killed one loses at most the item in hand,
        which the next send resolves. ``deadline`` (``time.monotonic()``) stops it after the item in
        hand once passed (at least one item goes per call): ``report.remaining`` says how many are
        left for the next call, which is how a web request stays short on a 5,000-household
        campaign. ``progress(done, total)`` is called after each item.
        """
        campaign = get_campaign(self.session, campaign_id)
        report = SendReport()
        quiet = self.config.quiet(self.today)
        if quiet is not None:
            report.deferred = f"période calme ({quiet.reason}) : rien n'est envoyé avant sa fin"
            return report
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lease = self.config.channels.sending_lease_s
        for item_id in stale_items(self.session, campaign_id, self.clock(), lease):
            if take_over(self.session, item_id, self.clock(), lease):
                report.recovered.append(f"élément {item_id}")
                self._send_claimed(campaign, item_id, report, resume=True)
        due = due_items(self.session, campaign_id, self.clock())
        for done, item_id in enumerate(due, 1):
            if self._sms_waits(item_id):
                report.waiting.append(f"élément {item_id} : SMS envoyé {sms_hours.HOURS_LABEL}")
            elif claim(self.session, item_id, self.clock()):
                self._send_claimed(campaign, item_id, report, resume=False)
            if progress is not None:
                progress(done, len(due))
            if deadline is not None and time.monotonic() >= deadline and done < len(due):
                report.remaining = len(due) - done  # the route sheet and the controls wait for the last call
                return report
        sheet = route_streets(self.session, items_of(self.session, campaign_id))
        if sheet:
            # absolute in the audit log: an erasure run from another directory rewrites it (route_sheets)
            path = (self.out_dir / sheet_name(campaign.id)).absolute()
            path.write_bytes(route_sheet_pdf(campaign.name, self._period(campaign), sheet))
            report.files.append(path)
            audit(self.session, self.actor, "reminders.route_sheet.export", f"campaign:{campaign.id}", str(path))
            self.session.commit()
        self.session.refresh(campaign)
        if campaign.started_at is not None:  # the comparison streets are fixed when the campaign goes out

            freeze_controls(self.session, campaign, self.config.effect, self.config.household.streams)
            self.session.commit()
        return report

    def _sms_waits(self, item_id: int) -> bool:
        """True when the item would go by SMS and this is not an hour to send one."""
        if sms_hours.sms_allowed(self.clock(), self.zone):
            return False
        item = self.session.get(Item, item_id)
        if item is None or item.kind != HOUSEHOLD:
            return False
        contact = self.session.get(Contact, item.target_key)
        return planned_channel(item, contact, self.config, bool(self.recipient(item, contact))) == "sms"

    def _send_claimed(self, campaign: Campaign, item_id: int, report: SendReport, resume: bool) -> None:
        item = self.session.get(Item, item_id, populate_existing=True)
        assert item is not None
        self._send_item(campaign, item, report, resume)
        self.session.commit()

    def _send_item(self, campaign: Campaign, item: Item, report: SendReport, resume: bool) -> None:
        if item.kind == HOUSEHOLD and self.session.get(OptOut, item.target_key) is not None:
            item.status, item.send_detail = SKIPPED, "opposition du foyer"
            report.skipped.append(f"élément {item.id} : opposition du foyer")
            # an approved item that did not go out: the trail says why, as for a send or a failure
            audit(self.session, self.actor, "reminders.send.skipped", f"item:{item.id}", "opt-out")
            return
        contact = self.session.get(Contact, item.target_key) if item.kind == HOUSEHOLD else None
        postal = self.recipient(item, contact) if item.kind == HOUSEHOLD else ""
        channel = item.channel if resume and item.channel else \
            planned_channel(item, contact, self.config, bool(postal))
        if resume and channel == "sms":
            self._failed(item, report, ChannelError(INTERRUPTED_SMS))
            return
        if channel is None:
            self._failed(item, report, ChannelError(
                f"{NO_CONTACT} : ni courriel, ni téléphone, ni adresse postale pour ce foyer (un bac sans adresse "
                "a besoin de son adresse postale dans les contacts)"))
            return
        item.channel = channel
        if channel == "email" and self.mailer and not item.message_id:
            item.message_id = self.mailer.new_message_id()
        self.session.commit()  # channel and Message-ID on record before the channel sees anything
        try:
            detail = self._deliver(channel, campaign, item, contact, postal, report)
        except ChannelError as error:
            self._failed(item, report, error)
            return
        except (TemplateError, LetterError) as error:  # an edited template that does not render: the
            self._failed(item, report, ChannelError(str(error)))  # item fails with why, not stuck in sending
            return
        item.status, item.sent_at, item.send_detail = SENT, self.clock(), detail[:2000]
        mark_started(self.session, campaign.id, item.sent_at)
        report.sent[channel] = report.sent.get(channel, 0) + 1
        audit(self.session, self.actor, "reminders.send", f"item:{item.id}",
              f"{channel} to {item.target_key} level {item.level}")

    def _failed(self, item: Item, report: SendReport, error: ChannelError) -> None:
        rules = self.config.channels.retry
        reason = str(error)[:2000]
        if error.temporary and item.attempts < rules.max_attempts:
            item.status, item.send_detail = RETRY, reason
            item.next_attempt_at = self.clock() + backoff(item.attempts, rules)
            report.retrying.append(f"élément {item.id} ({item.target_key}) : {error}")
            audit(self.session, self.actor, "reminders.send.retry", f"item:{item.id}", reason[:500])
            return
        item.status, item.send_detail, item.next_attempt_at = FAILED, reason, None
        report.failed.append(f"élément {item.id} ({item.target_key}) : {error}")
        audit(self.session, self.actor, "reminders.send.failed", f"item:{item.id}", reason[:500])

    def message(self, campaign: Campaign, item: Item, recipient: str | None = None,
                contact: Contact | None = None) -> TemplateData:
        street = self._street_label(item.street_id)
        name, address = self.addressee(item, contact) if item.kind == HOUSEHOLD else (None, "")
        return TemplateData(item.kind, item.level, recipient or street, street, item.lifts, item.contaminated,
                       item.categories, campaign.since, campaign.until, item.reason, self.today,
                       reference=reference(item), name=name, address=address,
                       tagged=bool(item.bin_id))

    def _deliver(self, channel: str, campaign: Campaign, item: Item, contact: Contact | None, postal: str,
                 report: SendReport) -> str:
        if channel == "print":
            path = self._write_pdf(campaign, item, self.message(campaign, item), "avis" if item.kind == "street"
                                   else "remerciement")
            report.files.append(path)
            return str(path)
        if channel == "email" and contact and contact.email and self.mailer:
            return self._email(campaign, item, contact)
        if channel == "sms" and contact and contact.phone and self.sms:
            text = self.sms_text(campaign, item, contact)
            if segments(text) > 1:  # an edited template or a long name: it still goes, at a higher price
                log.warning("item %s: SMS of %d characters costs %d segments", item.id, len(text), segments(text))
            return self.sms.send(contact.phone, text)
        if channel == "letter" and postal:
            message = self.message(campaign, item, postal, contact)
            try:
                address_block(message.name or NO_NAME, message.address)
            except AddressError as error:
                raise ChannelError(f"courrier impossible : {error}") from None
            path = self._write_pdf(campaign, item, message, "courrier")
            report.files.append(path)
            return str(path)
        raise ChannelError(f"canal {channel} indisponible pour ce foyer (coordonnée effacée ou canal retiré "
                           "de la configuration)")

    def letter_bytes(self, campaign: Campaign, item: Item, message: TemplateData,
                     photos: list[tuple[str, Path]] | None = None) -> bytes:
        text = self.templates.render(self.templates.document_for(item.kind), message)
        header = self.header(message) if item.kind == HOUSEHOLD else None
        paths = [path for _event, path in (self.evidence(item) if photos is None else photos)]
        return letter_pdf(text, paths, title=f"Trivue — {item.target_key}", header=header)

    def header(self, message: TemplateData) -> LetterHeader:
        """Sender, window address and date of a household letter (an incomplete address prints as is)."""
        contact = self.config.contact
        try:
            lines = address_block(message.name or NO_NAME, message.address)
        except AddressError:
            lines = [message.name or NO_NAME, *[p.strip() for p in message.address.split(",") if p.strip()]][:6]
        day = french_date(message.today)
        return LetterHeader((contact.organisation, *contact.postal_address), tuple(lines),
                            f"{contact.place}, le {day}" if contact.place else f"Le {day}")

    def _write_pdf(self, campaign: Campaign, item: Item, message: TemplateData, prefix: str) -> Path:
        # Recorded absolute (send_detail): an erasure or the mail room's print run from another
        # directory than the server's must find it with the default relative data_dir.
        path = (self.out_dir / f"{prefix}-campagne-{campaign.id}-{item.id}.pdf").absolute()
        photos = self.evidence(item)
        letter = self.letter_bytes(campaign, item, message, photos)
        path.write_bytes(letter)
        if item.kind == HOUSEHOLD:  # which photos the copy holds, by content, until the retention purges them
            item.letter_photos = photos_held(photos, letter)
        return path

    def _email(self, campaign: Campaign, item: Item, contact: Contact) -> str:
        assert self.mailer is not None and contact.email
        message = self.message(campaign, item, self.recipient(item, contact), contact)
        subject, body, photos = self._email_text(message, item)
        attachments = [Attachment("courrier-tri.pdf", self.letter_bytes(campaign, item, message), "application", "pdf")]
        attachments += [Attachment(f"photo-{n + 1}.jpg", p.read_bytes(), "image", "jpeg") for n, p in enumerate(photos)]
        headers = {"List-Unsubscribe": self.templates.list_unsubscribe(reference(item)),
                   "Reply-To": self.templates.opt_out_email(),
                   # RFC 3834: an out-of-office reply to a reminder would land in the opt-out box
                   "Auto-Submitted": "auto-generated"}
        return self.mailer.send(contact.email, subject, body, tuple(attachments),
                                message_id=item.message_id, headers=headers)

    def email_text(self, campaign: Campaign, item: Item, contact: Contact | None) -> tuple[str, str, list[Path]]:
        """The e-mail's subject and body as the household reads them (the preview shows the same),
        and the photos attached: the text announces photos only when some are still on disk."""
        return self._email_text(self.message(campaign, item, self.recipient(item, contact), contact), item)

    def _email_text(self, message: TemplateData, item: Item) -> tuple[str, str, list[Path]]:
        photos = [path for path in self.photos(item) if path.is_file()]
        text = self.templates.render("email", replace(message, photos=len(photos)))
        subject, _, body = french_spacing(text).partition("\n")
        return subject.strip(), plain_text(body), photos

    def sms_text(self, campaign: Campaign, item: Item, contact: Contact | None) -> str:
        """The SMS as the gateway gets it (GSM alphabet); the preview shows the same."""
        return gsm_text(self.templates.render("sms", self.message(campaign, item, self.recipient(item, contact),
                                                                  contact)))

    def photos(self, item: Item) -> list[Path]:
        return [path for _event, path in self.evidence(item)]

    def evidence(self, item: Item) -> list[tuple[str, Path]]:
        """The item's lifts that have a photo, with its file, in the item's order."""
        rows = dict(self.session.execute(select(Evidence.event_id, Evidence.path)
                                         .where(Evidence.event_id.in_(item.event_ids))).all())
        return [(e, self.evidence_root / rows[e]) for e in item.event_ids if e in rows]

    def recipient(self, item: Item, contact: Contact | None) -> str:
        """Name and postal address on one line; empty when the household cannot be written to."""
        name, address = self.addressee(item, contact)
        return f"{name or NO_NAME}, {address}" if address else ""

    def addressee(self, item: Item, contact: Contact | None) -> tuple[str | None, str]:
        """The household's name (None when unknown) and postal address ("" when none is known)."""
        name = contact.name if contact and contact.name else None
        if contact and contact.postal_address:
            return name, contact.postal_address
        if item.address_id is None:
            return name, ""

        label = self.session.scalar(select(Address.label).where(Address.id == item.address_id))
        return name, label or ""

    def _street_label(self, street_id: int | None) -> str:
        street = self.session.get(Street, street_id) if street_id is not None else None
        return f"{street.name}, {street.commune}" if street else "votre rue"

    @staticmethod
    def _period(campaign: Campaign) -> str:
        return f"{french_date(campaign.since)} au {french_date(campaign.until)}"
