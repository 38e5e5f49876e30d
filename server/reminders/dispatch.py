"""Sending a campaign: only approved items, each through the first channel the household can be
reached by (e-mail, SMS, printed letter), street notices and thank-you notices as PDFs to print,
and the ambassadeurs' route sheet. Every send is in the audit log, with its channel.

Checked again at send time: the household's opt-out and the quiet periods (an approved item
waits for the end of a quiet period). A failed delivery marks the item ``failed`` with the
reason and the campaign goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import utcnow
from server.ingest.models import Evidence
from server.reminders.campaigns import get_campaign, items_of
from server.reminders.channels import Attachment, ChannelError, Mailer, SmsGateway
from server.reminders.config import RemindersConfig
from server.reminders.letters import letter_pdf, route_sheet_pdf
from server.reminders.models import (
    APPROVED,
    FAILED,
    HOUSEHOLD,
    SENT,
    SKIPPED,
    STREET,
    Campaign,
    Channel,
    Contact,
    Item,
    OptOut,
)
from server.reminders.templates import MessageTemplates, TemplateData, french_date, plain_text
from server.reminders.walking_route import route_streets
from server.streets.models import Address, Street
from server.web.auth import audit

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SendReport:
    sent: dict[str, int] = field(default_factory=dict)  # channel -> items
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: str | None = None
    files: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class Dispatcher:
    session: Session
    config: RemindersConfig
    evidence_root: Path
    out_dir: Path
    actor: str
    today: date = field(default_factory=date.today)
    templates: MessageTemplates = field(init=False)
    mailer: Mailer | None = field(init=False)
    sms: SmsGateway | None = field(init=False)

    def __post_init__(self) -> None:
        self.templates = MessageTemplates(self.config)
        self.mailer = Mailer(self.config.channels.smtp) if self.config.channels.smtp else None
        self.sms = SmsGateway(self.config.channels.sms) if self.config.channels.sms else None

    def send_campaign(self, campaign_id: int) -> SendReport:
        """Send the approved items of a campaign; the caller commits (also after a partial run)."""
        campaign = get_campaign(self.session, campaign_id)
        report = SendReport()
        quiet = self.config.quiet(self.today)
        if quiet is not None:
            report.deferred = f"période calme ({quiet.reason}) : rien n'est envoyé avant sa fin"
            return report
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for item in items_of(self.session, campaign_id, APPROVED):
            self._send_item(campaign, item, report)
        sheet = route_streets(self.session, items_of(self.session, campaign_id))
        if sheet:
            path = self.out_dir / f"feuille-de-route-campagne-{campaign.id}.pdf"
            path.write_bytes(route_sheet_pdf(campaign.name, self._period(campaign), sheet))
            report.files.append(path)
            audit(self.session, self.actor, "reminders.route_sheet.export", f"campaign:{campaign.id}", str(path))
        return report

    def _send_item(self, campaign: Campaign, item: Item, report: SendReport) -> None:
        if item.kind == HOUSEHOLD and self.session.get(OptOut, item.target_key) is not None:
            item.status, item.send_detail = SKIPPED, "opposition du foyer"
            report.skipped.append(f"item {item.id}: opposition")
            return
        try:
            channel, detail = self._deliver(campaign, item, report)
        except ChannelError as error:
            item.status, item.send_detail = FAILED, str(error)[:2000]
            report.failed.append(f"item {item.id} ({item.target_key}): {error}")
            audit(self.session, self.actor, "reminders.send.failed", f"item:{item.id}", str(error)[:500])
            return
        item.status, item.channel, item.sent_at, item.send_detail = SENT, channel, utcnow(), detail[:2000]
        campaign.started_at = campaign.started_at or item.sent_at
        report.sent[channel] = report.sent.get(channel, 0) + 1
        audit(self.session, self.actor, "reminders.send", f"item:{item.id}",
              f"{channel} to {item.target_key} level {item.level}")

    def message(self, campaign: Campaign, item: Item, recipient: str | None = None) -> TemplateData:
        street = self._street_label(item.street_id)
        return TemplateData(item.kind, item.level, recipient or street, street, item.lifts, item.contaminated,
                       item.categories, campaign.since, campaign.until, item.reason, self.today)

    def _deliver(self, campaign: Campaign, item: Item, report: SendReport) -> tuple[str, str]:
        if item.kind != HOUSEHOLD:
            path = self._write_pdf(campaign, item, self.message(campaign, item), "avis" if item.kind == STREET
                                   else "remerciement")
            report.files.append(path)
            return Channel.print, str(path)
        contact = self.session.get(Contact, item.target_key)
        for channel in self.config.channels.order:
            if channel == Channel.email and contact and contact.email and self.mailer:
                return Channel.email, self._email(campaign, item, contact)
            if channel == Channel.sms and contact and contact.phone and self.sms:
                text = self.templates.render("sms", self.message(campaign, item, self.recipient(item, contact)))
                return Channel.sms, self.sms.send(contact.phone, text.strip())
            if channel == Channel.letter and (postal := self.recipient(item, contact)):
                path = self._write_pdf(campaign, item, self.message(campaign, item, postal), "courrier")
                report.files.append(path)
                return Channel.letter, str(path)
        raise ChannelError("no way to reach this household: no e-mail, phone or postal address on file "
                           "(a bin without address needs its postal address in the contacts)")

    def letter_bytes(self, campaign: Campaign, item: Item, message: TemplateData) -> bytes:
        text = self.templates.render(self.templates.document_for(item.kind), message)
        return letter_pdf(text, self.photos(item), title=f"Trivue — {item.target_key}")

    def _write_pdf(self, campaign: Campaign, item: Item, message: TemplateData, prefix: str) -> Path:
        path = self.out_dir / f"{prefix}-campagne-{campaign.id}-{item.id}.pdf"
        path.write_bytes(self.letter_bytes(campaign, item, message))
        return path

    def _email(self, campaign: Campaign, item: Item, contact: Contact) -> str:
        assert self.mailer is not None and contact.email
        message = self.message(campaign, item, self.recipient(item, contact))
        subject, _, body = self.templates.render("email", message).partition("\n")
        attachments = [Attachment("courrier-tri.pdf", self.letter_bytes(campaign, item, message), "application", "pdf")]
        attachments += [Attachment(f"photo-{n + 1}.jpg", p.read_bytes(), "image", "jpeg")
                        for n, p in enumerate(self.photos(item)) if p.is_file()]
        return self.mailer.send(contact.email, subject.strip(), plain_text(body), tuple(attachments))

    def photos(self, item: Item) -> list[Path]:
        rows = dict(self.session.execute(select(Evidence.event_id, Evidence.path)
                                         .where(Evidence.event_id.in_(item.event_ids))).all())
        return [self.evidence_root / rows[e] for e in item.event_ids if e in rows]

    def recipient(self, item: Item, contact: Contact | None) -> str:
        """The postal address block; empty when the household cannot be written to."""
        name = contact.name if contact and contact.name else "Aux occupants"
        if contact and contact.postal_address:
            return f"{name}, {contact.postal_address}"
        if item.address_id is None:
            return ""

        label = self.session.scalar(select(Address.label).where(Address.id == item.address_id))
        return f"{name}, {label}" if label else ""

    def _street_label(self, street_id: int | None) -> str:
        street = self.session.get(Street, street_id) if street_id is not None else None
        return f"{street.name}, {street.commune}" if street else "votre rue"

    @staticmethod
    def _period(campaign: Campaign) -> str:
        return f"{french_date(campaign.since)} au {french_date(campaign.until)}"
