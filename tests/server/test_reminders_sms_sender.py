"""The SMS sender and refusal line follow the French rules: an alphanumeric sender (3 to 11
letters or digits, at least one letter) cannot take replies, so « répondez STOP » is only said
when the sender is a number; otherwise the SMS points to the service's page, e-mail or phone.
Reminders are public-service information, not prospection (no mandatory « STOP SMS »), but the
resident's right to object must be reachable from the SMS itself."""

from __future__ import annotations

from datetime import date

import pytest

from server.reminders.config import DEFAULT_SMS_SENDER, RemindersConfig, SmsChannel
from server.reminders.sms_text import gsm_text, is_gsm7, segments
from server.reminders.templates import MessageTemplates, TemplateData, sms_opt_out
from tests.server.reminders_city import RULES

TODAY = date(2026, 11, 20)
URL = "http://127.0.0.1:9/send"


def sms(config: RemindersConfig) -> str:
    return gsm_text(MessageTemplates(config, RULES).render("sms", TemplateData(
        "household", 1, "M. Durand", "Rue Hoche", 9, 3, {"verre": 2, "sac_ferme": 1, "biodechet": 1},
        TODAY, TODAY, reference="R1-12")))


def test_the_default_sender_is_not_the_softwares_name() -> None:
    assert DEFAULT_SMS_SENDER != "TRIVUE" and SmsChannel(url=URL).sender == DEFAULT_SMS_SENDER
    assert 3 <= len(DEFAULT_SMS_SENDER) <= 11 and DEFAULT_SMS_SENDER.isalnum()


@pytest.mark.parametrize("bad", ["AB", "12", "Orléans", "ORLEANSMETROPOLE", " ORLEANS", "ORLEANS-MET"])
def test_senders_a_french_operator_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        SmsChannel(url=URL, sender=bad)


def test_no_reply_stop_with_an_alphanumeric_sender() -> None:
    with pytest.raises(ValueError, match="répondre"):
        SmsChannel(url=URL, sender="ORLEANSMET", opt_out="STOP : répondez STOP")
    assert SmsChannel(url=URL, sender="+33612345678", opt_out="STOP : répondez STOP").opt_out


@pytest.mark.parametrize(("contact", "sender", "line"), [
    ({}, "+33612345678", "STOP : répondez STOP"),
    ({"opt_out_url": "https://tri.metropole.fr/stop", "email": "tri@metropole.fr"}, None,
     "STOP : tri.metropole.fr/stop"),
    ({"email": "tri@metropole.fr", "phone": "02 38 00 00 00"}, None, "STOP : tri@metropole.fr"),
    ({"phone": "02 38 00 00 00"}, None, "STOP : 02 38 00 00 00"),
])
def test_the_refusal_line_is_one_the_resident_can_use(contact: dict[str, str], sender: str | None,
                                                      line: str) -> None:
    channel = {"url": URL} | ({"sender": sender} if sender else {})
    config = RemindersConfig(contact={"website": "tri.metropole.fr", **contact}, channels={"sms": channel})
    assert sms_opt_out(config) == line
    text = sms(config)
    assert text.endswith(line) and is_gsm7(text) and segments(text) == 1, (len(text), text)


def test_an_explicit_refusal_line_wins() -> None:
    config = RemindersConfig(channels={"sms": {"url": URL, "opt_out": "STOP au 36180"}})
    assert sms(config).endswith("STOP au 36180")
