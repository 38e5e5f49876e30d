"""Delivery channels: e-mail over SMTP (STARTTLS or implicit TLS, credentials) and SMS through
an HTTP gateway (URL, field template and token from the configuration).

Secrets are never in the rules file: it names the environment variable that holds them.
A failed delivery raises ``ChannelError`` with a readable reason and whether it is temporary
(SMTP 4xx, a timeout or a refused connection, a gateway's 5xx or 429: worth trying again later) or
permanent (SMTP 5xx, a gateway's 4xx, a number that is not one); the caller records it on the item
and goes on with the next one.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from jinja2 import Environment, StrictUndefined

from server.reminders.config import SmsChannel, SmtpChannel
from server.reminders.mailbox import MailboxError, smtp_mailbox
from server.reminders.sms_text import PhoneError, e164

log = logging.getLogger(__name__)


class ChannelError(RuntimeError):
    """A message that could not be handed over; the reason says why, ``temporary`` whether to retry."""

    def __init__(self, reason: str, temporary: bool = False) -> None:
        super().__init__(reason)
        self.temporary = temporary


def _smtp_temporary(error: Exception) -> bool:
    """4xx replies, dropped connections and timeouts pass; 5xx replies and TLS failures do not."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, ssl.SSLError):
        return False  # a certificate problem does not heal by waiting
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return False  # the relay lacks an extension (SMTPUTF8): it will lack it next time too
    return isinstance(error, (smtplib.SMTPServerDisconnected, OSError))


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


def _secret(variable: str | None, what: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ChannelError(f"{what} : variable d'environnement {variable} absente")
    return value


class Mailer:
    def __init__(self, config: SmtpChannel) -> None:
        self.config = config

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.config.ca_file) if self.config.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "tls":
            return smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=self._context())
        client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        if c.security == "starttls":
            client.starttls(context=self._context())
        return client

    def new_message_id(self) -> str:
        return make_msgid(idstring="trivue", domain=self.config.sender.rpartition("@")[2] or None)

    def send(self, to: str, subject: str, body: str, attachments: tuple[Attachment, ...] = (),
             message_id: str | None = None, headers: dict[str, str] | None = None) -> str:
        """Send one message; returns its Message-ID.

        A resend after an interruption passes the first attempt's ``message_id``: mail stores and
        clients keep one copy of messages that share a Message-ID.
        """
        try:  # "a,b@x.fr" is two recipients, "josé@x.fr" needs SMTPUTF8: neither is ever deliverable
            to = smtp_mailbox(to)
        except MailboxError as error:
            raise ChannelError(str(error)) from None
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.config.sender, to, subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id or self.new_message_id()
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        for item in attachments:
            message.add_attachment(item.content, maintype=item.maintype, subtype=item.subtype,
                                   filename=item.filename)
        try:
            with self._connect() as client:
                if self.config.username:
                    client.login(self.config.username, _secret(self.config.password_env, "mot de passe SMTP") or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
            raise ChannelError(f"SMTP {self.config.host}:{self.config.port} : {error}",
                               _smtp_temporary(error)) from None
        return str(message["Message-ID"])


class SmsGateway:
    def __init__(self, config: SmsChannel) -> None:
        self.config = config
        self.env = Environment(undefined=StrictUndefined, autoescape=False)

    def request(self, phone: str, text: str) -> urllib.request.Request:
        values = {"phone": phone, "text": text, "sender": self.config.sender}
        fields = {name: self.env.from_string(template).render(values) for name, template in self.config.fields.items()}
        if self.config.encoding == "json":
            data, content_type = json.dumps(fields).encode(), "application/json"
        else:
            data, content_type = urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, "User-Agent": "trivue-reminders"}
        token = _secret(self.config.token_env, "jeton de la passerelle SMS")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return urllib.request.Request(self.config.url, data=data, headers=headers, method="POST")

    def send(self, phone: str, text: str) -> str:
        """POST one SMS to the E.164 form of ``phone``; returns the gateway's answer (first 200 characters)."""
        try:
            number = e164(phone, self.config.country_code)
        except PhoneError as error:
            raise ChannelError(str(error)) from None
        try:
            with urllib.request.urlopen(self.request(number, text), timeout=self.config.timeout_s) as response:
                return response.read(200).decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            detail = error.read(200).decode("utf-8", "replace")
            temporary = error.code >= 500 or error.code == 429  # busy or down: later; 4xx: our request is wrong
            raise ChannelError(f"la passerelle SMS a répondu {error.code} : {detail}", temporary) from None
        except (urllib.error.URLError, OSError) as error:
            raise ChannelError(f"passerelle SMS {self.config.url} : {error}", temporary=True) from None
