"""E-mail addresses Trivue can send to: one bare mailbox whose part before the @ is ASCII.

The relays a collectivité uses rarely offer SMTPUTF8 (RFC 6531), and Trivue does not assume it:
``josé@exemple.fr`` can never be handed over, so it is refused at import and fails for good at
send time, with the reason, instead of being retried for hours. A domain in another script
(``marie@écoles.fr``) needs no extension: it travels in its IDNA form (``xn--coles-9ra.fr``).
"""

from __future__ import annotations

import re

# One mailbox, bare: a comma, a semicolon or angle brackets made "a,postmaster@relay" two recipients.
_ATOM = r"[^@\s,;:<>()\[\]\"\\]+"
EMAIL = re.compile(rf"^{_ATOM}@{_ATOM}\.{_ATOM}$")


class MailboxError(ValueError):
    """An address the mailer cannot send to, in French."""


def smtp_mailbox(address: str) -> str:
    """``address`` as the SMTP envelope and the To: header carry it (ASCII); MailboxError if none."""
    if not EMAIL.match(address):
        raise MailboxError(f"courriel {address!r} invalide")
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise MailboxError(f"courriel {address!r} : caractère non ASCII avant « @ » (adresse internationalisée, "
                           "que le serveur d'envoi ne sait pas acheminer)")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise MailboxError(f"courriel {address!r} invalide") from None
    return f"{local}@{ascii_domain}"
