"""What a resident receives: e-mail headers (Date, List-Unsubscribe, stable Message-ID) with an
opt-out they can act on; SMS in E.164, one GSM segment, ending with the refusal keyword; which
failures are temporary."""

from __future__ import annotations

import smtplib
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from server.reminders.channels import ChannelError, Mailer, SmsGateway, _smtp_temporary
from server.reminders.config import RemindersConfig, SmsChannel
from server.reminders.dispatch import Dispatcher
from server.reminders.sms_text import PhoneError, e164, gsm_text, is_gsm7, mobile, segments
from server.reminders.templates import MessageTemplates, TemplateData
from tests.server.reminders_city import RULES, City, Relay
from tests.server.test_reminders_exactly_once import TODAY, approved_campaign, rules_for


@pytest.mark.parametrize(("raw", "expected"), [
    ("06 98 76 54 32", "+33698765432"), ("06.98.76.54.32", "+33698765432"), ("+33 6 98 76 54 32", "+33698765432"),
    ("+33 (0)6 98 76 54 32", "+33698765432"), ("0033698765432", "+33698765432"), ("+32 470 12 34 56", "+32470123456"),
])
def test_phone_numbers_in_e164(raw: str, expected: str) -> None:
    assert e164(raw) == expected


# ARCEP: the overseas départements dial in the national plan (0 + 9 digits) but have their own country
# codes; +33 690… (what Trivue sent until 2026-12-05, and what the contacts import stored) reaches nobody.
@pytest.mark.parametrize(("raw", "expected"), [
    ("0690 12 34 56", "+590690123456"), ("0691 12 34 56", "+590691123456"),  # Guadeloupe, St-Martin, St-Barth
    ("0694 12 34 56", "+594694123456"),  # Guyane
    ("0696 12 34 56", "+596696123456"), ("0697 12 34 56", "+596697123456"),  # Martinique
    ("0692 12 34 56", "+262692123456"), ("0693 12 34 56", "+262693123456"),  # La Réunion
    ("0639 12 34 56", "+262639123456"),  # Mayotte
    ("0590 12 34 56", "+590590123456"), ("0262 12 34 56", "+262262123456"), ("0269 61 23 45", "+262269612345"),
    ("+33 6 90 12 34 56", "+590690123456"), ("0033 692 12 34 56", "+262692123456"),  # stored by an old import
    ("+590 690 12 34 56", "+590690123456"), ("+262 (0)6 92 12 34 56", "+262692123456"),
])
def test_overseas_numbers_get_their_own_country_code(raw: str, expected: str) -> None:
    assert e164(raw) == expected
    assert e164(expected) == expected  # stored in E.164 by the import, read again at send time


def test_overseas_mobiles_get_sms_and_overseas_landlines_do_not() -> None:
    for number in ("0690 12 34 56", "0691 12 34 56", "0694 12 34 56", "0696 12 34 56", "0697 12 34 56",
                   "0692 12 34 56", "0693 12 34 56", "0639 12 34 56", "+33 6 90 12 34 56", "+262692123456"):
        assert mobile(number), number
    for number in ("0590 12 34 56", "0594 12 34 56", "0596 12 34 56", "0262 12 34 56", "0269 61 23 45",
                   "+590590123456", "+262262123456", "+33 2 62 12 34 56"):
        assert not mobile(number), number
    with pytest.raises(PhoneError, match="10 chiffres"):  # an overseas number one digit short
        e164("+590 690 12 34 5")


@pytest.mark.parametrize("raw", ["698765432", "06 98 76 54", "+33 6 98 76 54 32 11", "abc"])
def test_impossible_numbers_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError, match="numéro"):
        e164(raw)


def test_segments() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("é" * 160) == 1  # é is in the GSM alphabet
    assert segments("ê" * 70) == 1 and segments("ê" * 71) == 2  # ê is not: UCS-2
    assert gsm_text("Fenêtre « propre » — ça") == 'Fenetre " propre " - ca' and is_gsm7(gsm_text("œuf"))


def test_default_sms_fits_one_segment_and_says_how_to_refuse() -> None:
    config = RemindersConfig(contact={"website": "tri.orleans-metropole.fr", "email": "tri@orleans.fr"},
                             channels={"sms": {"url": "http://127.0.0.1/"}})
    text = gsm_text(MessageTemplates(config, RULES).render("sms", TemplateData(
        "household", 1, "M. Durand", "Rue Hoche", 9, 3, {"verre": 2, "sac_ferme": 1, "biodechet": 1},
        TODAY, TODAY, reference="R1-12")))
    assert is_gsm7(text) and segments(text) == 1, (len(text), text)
    # The default sender is a name, which takes no reply: the service's address, not « répondez STOP ».
    assert text.endswith("STOP : tri@orleans.fr") and "tri.orleans-metropole.fr" in text


def test_sms_goes_to_e164_and_bad_numbers_fail_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = []
    gateway = SmsGateway(SmsChannel(url="http://127.0.0.1:9/send"))
    monkeypatch.setattr(gateway, "request", lambda phone, text: sent.append(phone) or (_ for _ in ()).throw(
        OSError("stop here")))
    with pytest.raises(ChannelError) as error:
        gateway.send("06 98 76 54 32", "Bonjour")
    assert sent == ["+33698765432"] and error.value.temporary  # the network failed: worth another try
    with pytest.raises(ChannelError) as error:
        gateway.send("12", "Bonjour")
    assert not error.value.temporary and "numéro" in str(error.value)


def test_smtp_failures_classified() -> None:
    assert _smtp_temporary(smtplib.SMTPResponseException(451, b"later"))
    assert not _smtp_temporary(smtplib.SMTPResponseException(550, b"no such user"))
    assert _smtp_temporary(smtplib.SMTPRecipientsRefused({"a@b.fr": (452, b"full")}))
    assert not _smtp_temporary(smtplib.SMTPRecipientsRefused({"a@b.fr": (550, b"unknown")}))
    assert _smtp_temporary(TimeoutError("timed out")) and _smtp_temporary(ConnectionRefusedError())


def test_email_headers_and_opt_out(city: City, smtp_relay: tuple[Relay, int], tmp_path: Path) -> None:
    import email

    inbox, port = smtp_relay
    rules = rules_for(port).model_copy(update={"contact": RemindersConfig().contact.model_copy(update={
        "email": "tri@metropole.example.fr", "opt_out_url": "https://tri.metropole.example.fr/stop"})})
    campaign_id, _keys = approved_campaign(city, rules, {"target": "martin@example.fr"})
    with city.sessions() as session:
        Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test",
                   sorting_rules=RULES, today=TODAY).send_campaign(campaign_id)
    (raw,) = inbox.raw
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    unsubscribe = str(message["List-Unsubscribe"]).strip()  # folded: a long header starts on the next line
    assert unsubscribe.startswith("<mailto:tri@metropole.example.fr?subject=STOP%20rappels%20de%20tri%20R")
    assert "<https://tri.metropole.example.fr/stop>" in unsubscribe
    assert message["Reply-To"] == "tri@metropole.example.fr"
    body = " ".join(message.get_body(("plain",)).get_content().split())  # no-break spaces inside « »
    assert "répondez « STOP »" in body and f"R{campaign_id}-" in body and "tri.metropole.example.fr/stop" in body
    with city.sessions() as session:
        from sqlalchemy import select

        from server.reminders.models import Item

        # The e-mailed household's item: the campaign's other households get letters, and without
        # this filter PostgreSQL may return any of them first (no order), with no Message-ID.
        stored = session.scalar(select(Item.message_id).where(Item.campaign_id == campaign_id,
                                                              Item.kind == "household", Item.channel == "email"))
    assert stored == str(message["Message-ID"]).strip()


def test_mailer_keeps_a_given_message_id(smtp_relay: tuple[Relay, int]) -> None:
    inbox, port = smtp_relay
    mailer = Mailer(rules_for(port).channels.smtp)  # type: ignore[arg-type]
    given = mailer.new_message_id()
    assert mailer.send("a@example.fr", "s", "b", message_id=given) == given
    assert inbox.messages == [("a@example.fr", given)]


def test_an_address_the_relay_can_never_take_fails_for_good_at_once(city: City, smtp_relay: tuple[Relay, int],
                                                                    tmp_path: Path) -> None:
    """``josé@exemple.fr`` needs SMTPUTF8, which the relay does not offer: smtplib's refusal was taken
    for a temporary failure and the item was retried 5 times over hours before failing."""
    from sqlalchemy import select

    from server.reminders.models import Contact, Item

    assert not _smtp_temporary(smtplib.SMTPNotSupportedError("SMTPUTF8 required"))
    inbox, port = smtp_relay
    mailer = Mailer(rules_for(port).channels.smtp)  # type: ignore[arg-type]
    with pytest.raises(ChannelError, match="non ASCII") as refused:
        mailer.send("josé@exemple.fr", "s", "b")
    assert not refused.value.temporary and inbox.messages == []
    mailer.send("marie@écoles.fr", "s", "b")  # an accented domain travels in its IDNA form
    assert inbox.messages[0][0] == "marie@xn--coles-9ra.fr"

    campaign_id, keys = approved_campaign(city, rules_for(port), {"target": "martin@example.fr"})
    (key,) = keys
    with city.sessions() as session:  # a contact stored before the import refused such addresses
        session.get(Contact, key).email = "josé@exemple.fr"  # type: ignore[union-attr]
        session.commit()
        Dispatcher(session, rules_for(port), city.settings.evidence_path, tmp_path, "test",
                   sorting_rules=RULES, today=TODAY).send_campaign(campaign_id)
    with city.sessions() as session:
        item = session.scalar(select(Item).where(Item.campaign_id == campaign_id, Item.target_key == key))
    assert item is not None and (item.status, item.attempts) == ("failed", 1)
    assert "non ASCII" in (item.send_detail or "")


def test_the_import_refuses_an_address_the_mailer_cannot_send_to(city: City) -> None:
    from server.reminders.households import import_contacts

    a = city.addresses
    text = (f"key;email\naddress:{a['target'].id};josé@exemple.fr\n"
            f"address:{a['once'].id};marie@écoles.fr\n")
    with city.sessions() as session:
        report = import_contacts(session, text, "test", "test")
    assert report.imported == 1 and len(report.errors) == 1
    assert report.errors[0].startswith("ligne 2 : courriel 'josé@exemple.fr' : caractère non ASCII avant « @ »")
    with pytest.raises(ValueError, match="non ASCII"):  # nor can the sender be accented (MAIL FROM)
        RemindersConfig(channels={"smtp": {"host": "h", "sender": "josé@exemple.fr"}})


def test_an_accent_outside_the_gsm_alphabet_does_not_triple_the_price() -> None:
    """ú, ã, ŷ (a resident's or a street's name in an edited template) made the whole SMS UCS-2:
    70 characters a segment, a 150-character SMS cost 3 instead of 1."""
    text = gsm_text("Bonjour Lúcia Conceição, " + "votre bac jaune contenait du verre. " * 3
                    + "Merci, Orléans Métropole.")
    assert is_gsm7(text) and segments(text) == 1, text
    assert "Lucia Conceicao" in text and "Orléans Métropole" in text  # é stays: it is GSM
    assert mobile("06 12 34 56 78") and mobile("+33 7 12 34 56 78") and mobile("+44 7700 900123")
    assert not mobile("02 38 79 22 22") and not mobile("0800 12 34 56") and not mobile("12")
