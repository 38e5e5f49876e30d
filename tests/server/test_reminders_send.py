"""Sending for real: e-mail to a local SMTP server (aiosmtpd, STARTTLS and login), SMS to a local
fake HTTP gateway, letters and the route sheet as PDFs read back with pypdf. Only approved items go."""

from __future__ import annotations

import email
import email.policy
import io
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pypdf import PdfReader
from sqlalchemy import select

from server.audit import AuditEntry
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.channels import Attachment, ChannelError, Mailer, SmsGateway
from server.reminders.config import RemindersConfig, SmsChannel, SmtpChannel
from server.reminders.dispatch import Dispatcher
from server.reminders.households import import_contacts
from server.reminders.models import Item
from server.reminders.plan import make_plan
from tests.conftest import free_port
from tests.server.reminders_city import RULES, City, engine_for, seed_city

TODAY = date(2026, 11, 20)
USER, PASSWORD = "trivue", "s3cret-relay-pass"


def pdf_text(data: bytes) -> str:
    """The PDF's text with whitespace normalised (justified lines extract with double spaces)."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(params=["starttls"])
def smtp_server(request: pytest.FixtureRequest, certificate: tuple[Path, Path],
                monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, SmtpChannel]]:
    """aiosmtpd with a self-signed certificate and a login; STARTTLS, or TLS from the first byte."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    inbox, port = Inbox(), free_port()
    if request.param == "starttls":
        controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                                auth_required=True, authenticator=_authenticate)
    else:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context, auth_required=True,
                                authenticator=_authenticate, auth_require_tls=False)  # only knows STARTTLS
    controller.start()
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    try:
        yield inbox, SmtpChannel(host="127.0.0.1", port=port, security=request.param, username=USER,
                                 password_env="TEST_SMTP_PASSWORD", ca_file=certificate[0],
                                 sender="tri@metropole.example.fr")
    finally:
        controller.stop()


class Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Gateway.received.append({"headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(Gateway.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "sms-1"}' if Gateway.status == 200 else b'{"error": "quota"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sms_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmsChannel]:
    Gateway.received, Gateway.status = [], 200
    server = HTTPServer(("127.0.0.1", free_port()), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TEST_SMS_TOKEN", "tok-123")
    try:
        yield SmsChannel(url=f"http://127.0.0.1:{server.server_port}/send", token_env="TEST_SMS_TOKEN",
                         fields={"to": "{{ phone }}", "message": "{{ text }}", "from": "{{ sender }}"})
    finally:
        server.shutdown()


@pytest.mark.parametrize("smtp_server", ["starttls", "tls"], indirect=True)
def test_email_over_tls_with_login(smtp_server: tuple[Inbox, SmtpChannel],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, channel = smtp_server
    Mailer(channel).send("foyer@example.fr", "Une erreur de tri", "Bonjour,\nvoici la photo.",
                         (Attachment("photo-1.jpg", b"\xff\xd8\xff\xd9", "image", "jpeg"),))
    (message,) = inbox.messages
    assert message["Subject"] == "Une erreur de tri" and message["To"] == "foyer@example.fr"
    assert "voici la photo" in message.get_body(("plain",)).get_content()
    assert [p.get_filename() for p in message.iter_attachments()] == ["photo-1.jpg"]
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-password")
    with pytest.raises(ChannelError, match=r"SMTP 127\.0\.0\.1"):
        Mailer(channel).send("foyer@example.fr", "x", "y")
    assert len(inbox.messages) == 1


def test_sms_gateway(sms_gateway: SmsChannel) -> None:
    assert SmsGateway(sms_gateway).send("+33600000001", "Bonjour") == '{"id": "sms-1"}'
    (request,) = Gateway.received
    assert request["body"] == {"to": "+33600000001", "message": "Bonjour", "from": "INFODECHETS"}  # the default sender
    assert request["headers"]["Authorization"] == "Bearer tok-123"
    Gateway.status = 500
    with pytest.raises(ChannelError, match=r"a répondu 500.*quota"):
        SmsGateway(sms_gateway).send("+33600000001", "Bonjour")


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    with engine_for("sqlite", tmp_path, False) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def test_send_campaign_only_approved(city: City, smtp_server: tuple[Inbox, SmtpChannel], sms_gateway: SmsChannel,
                                     tmp_path: Path) -> None:
    inbox, smtp = smtp_server
    a = city.addresses
    rules = RemindersConfig(channels={"smtp": smtp.model_dump(), "sms": sms_gateway.model_dump()},
                            contact={"phone": "02 38 00 00 00", "website": "tri.example.fr"})
    with city.sessions() as session:
        import_contacts(session, f"key,name,email,phone\naddress:{a['target'].id},Mme Martin,martin@example.fr,\n"
                                 "bin:BAC-0042,M. Durand,,+33600000042\n", "test", "contacts.csv")
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
        session.flush()
        items = {i.target_key: i for i in session.scalars(select(Item).where(Item.campaign_id == campaign.id))}
        pending = items[f"street:{city.streets['clean']}:thanks"]  # left pending: must not be sent
        for item in items.values():
            if item is not pending:
                review(session, item.id, Decision(True), "user:gestionnaire")
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path / "out", "user:gestionnaire",
                            sorting_rules=RULES, today=TODAY).send_campaign(campaign.id)
        session.commit()
        audit = [e.detail for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "reminders.send"))]
        assert pending.status == "pending" and pending.sent_at is None
    assert report.sent == {"email": 1, "sms": 1, "letter": 1, "print": 1} and not report.failed
    assert len(audit) == 4 and any(d.startswith("email to address:") for d in audit)
    (mail,) = inbox.messages
    assert mail["To"] == "martin@example.fr" and "erreur de tri" in mail["Subject"]
    body = mail.get_body(("plain",)).get_content()
    assert "verre (2 fois)" in body and "##" not in body
    files = {p.get_filename(): p.get_content() for p in mail.iter_attachments()}
    assert sorted(files) == ["courrier-tri.pdf", "photo-1.jpg", "photo-2.jpg", "photo-3.jpg"]
    letter = pdf_text(files["courrier-tri.pdf"])
    assert "Mme Martin" in letter and "Du verre dans le bac" in letter and "borne à verre" in letter
    assert "02 38 00 00 00" in letter and "Emballages (bac jaune)" in letter
    (sms,) = Gateway.received
    assert sms["body"]["to"] == "+33600000042" and "erreurs de tri" in sms["body"]["message"]
    printed = {p.name.split("-")[0]: p for p in report.files}
    postal = pdf_text(printed["courrier"].read_bytes())
    street_part, postcode, commune = a["opted_out"].label.rsplit(" ", 2)
    assert f"{street_part.upper()} {postcode} {commune.upper()}" in postal and "Aux occupants" in postal
    notice = pdf_text(printed["avis"].read_bytes())
    assert "Aux habitants : Rue Hoche, Rennes" in notice and "12 levées sur 30 dans votre rue" in notice


def test_route_sheet_orders_addresses_along_the_street(city: City, tmp_path: Path) -> None:
    """Level-3 visits and the street notice of Rue Hoche, in walking order on the sheet."""
    from server.reminders.letters import route_sheet_pdf
    from server.reminders.walking_route import axis_positions, route_streets

    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Visites", "test", rules)
        session.flush()
        items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
        for item in items:
            if item.kind in ("household", "street"):
                item.level = 3
                review(session, item.id, Decision(True), "test")
        text = pdf_text(route_sheet_pdf("Visites", "période", route_streets(session, items)))
    hoche = text[text.index("Rue Hoche, Rennes"):]
    first, second = (city.addresses[r].label for r in ("target", "opted_out"))
    assert first in hoche and second in hoche and "Toute la rue" in hoche
    assert "verre" in hoche and "visite" in hoche
    # Numbers 3 and 5 lie on the same side, 3 first from the west end of this east-west street.
    assert hoche.index(first) < hoche.index(second)
    assert axis_positions([(0.0, 0.0), (0.001, 0.0)], [(0.0008, 0.0), (0.0002, 0.0)])[1] < \
        axis_positions([(0.0, 0.0), (0.001, 0.0)], [(0.0008, 0.0), (0.0002, 0.0)])[0]


def test_send_time_checks_quiet_period_and_opt_out(city: City, tmp_path: Path) -> None:
    """Approved, then the household opts out, then a quiet period starts: nothing leaves."""
    from server.reminders.campaigns import CampaignError
    from server.reminders.households import opt_out

    rules = RemindersConfig()
    key = f"address:{city.addresses['target'].id}"
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
        for item in items:
            review(session, item.id, Decision(True), "test")
        quiet = RemindersConfig(quiet_periods=[{"start": "2026-11-21", "end": "2026-11-30", "reason": "grève"}])
        report = Dispatcher(session, quiet, city.settings.evidence_path, tmp_path, "test",
                            sorting_rules=RULES, today=date(2026, 11, 25)).send_campaign(campaign.id)
        assert report.deferred and "grève" in report.deferred and not report.sent
        assert all(i.status == "approved" for i in items)
        opt_out(session, key, "test", "appel du foyer")
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test",
                            sorting_rules=RULES, today=TODAY).send_campaign(campaign.id)
        statuses = {i.target_key: i.status for i in items}
        assert statuses[key] == "skipped" and "letter" in report.sent
        with pytest.raises(CampaignError, match="aucun message pour la rue 999999"):
            create_campaign(session, make_plan(session, rules, TODAY), "vide", "test", rules, street_id=999999)


def test_an_sms_goes_to_mobiles_only(city: City, sms_gateway: SmsChannel, tmp_path: Path) -> None:
    """A landline (02…) or a special number (08…) on file took the SMS channel: the gateway charged
    an SMS nobody reads, and the household's postal address was never used. It gets the letter."""
    from datetime import UTC, datetime

    a = city.addresses
    rules = RemindersConfig(channels={"sms": sms_gateway.model_dump()})
    with city.sessions() as session:
        import_contacts(session, f'key,name,phone,postal_address\naddress:{a["target"].id},Mme Martin,02 38 12 34 56,'
                                 f'"12 rue Hoche, 35000 Rennes"\nbin:BAC-0042,M. Durand,06 12 34 56 78,\n'
                                 f'address:{a["opted_out"].id},M. Leroy,08 00 12 34 56,\n', "test", "contacts.csv")
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
        session.flush()
        items = {i.target_key: i for i in session.scalars(select(Item).where(Item.campaign_id == campaign.id))}
        for item in items.values():
            review(session, item.id, Decision(True), "test")
        at_ten = lambda: datetime(2026, 11, 20, 10, tzinfo=UTC)  # noqa: E731  (SMS hours: a Friday morning)
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path / "out", "test", sorting_rules=RULES,
                            today=TODAY, clock=at_ten).send_campaign(campaign.id)
        session.commit()
        channels = {key: (item.status, item.channel) for key, item in items.items()}
    assert [r["body"]["to"] for r in Gateway.received] == ["+33612345678"]
    assert channels["bin:BAC-0042"] == ("sent", "sms")
    assert channels[f"address:{a['target'].id}"] == ("sent", "letter")
    assert channels[f"address:{a['opted_out'].id}"] == ("sent", "letter")  # its matched address, not the 08
    assert report.sent == {"sms": 1, "letter": 2, "print": 2} and not report.failed
