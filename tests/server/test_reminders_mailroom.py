"""What a collectivité's mail room, its DPO and La Poste expect of the reminders: the address block
by NF Z10-011 (number and street on one line, no punctuation nor accents from the street line
down), nothing but the address where the DL window can show the sheet, the place and date line,
French no-break spaces, the RGPD notice (art. 13 and 14) in letters and e-mails with the server's
own retention periods, and SMS only at decent hours."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from server.reminders import sms_hours
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig, SmsChannel
from server.reminders.dispatch import Dispatcher
from server.reminders.households import import_contacts
from server.reminders.letters import WINDOW_REACH_MM, WINDOW_X_MM, WINDOW_Y_MM, LetterHeader, letter_pdf
from server.reminders.models import HOUSEHOLD, Item
from server.reminders.plan import make_plan
from server.reminders.postal import MAX_CHARS, address_block
from server.reminders.templates import MessageTemplates, Retention, TemplateData, plain_text
from server.reminders.typography import NBSP, NNBSP, french_spacing
from tests.server.reminders_city import RULES, City
from tests.server.test_reminders_exactly_once import TODAY
from tests.server.test_reminders_letters import ink, render

REAL_SMS_ALLOWED = sms_hours.sms_allowed  # tests/server/conftest.py opens the hours for the other tests
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(("address", "street"), [
    ("12, rue de l'Église, 45000 Orléans", "12 RUE DE L EGLISE"),  # the comma made "12" a line of its own
    ("3 bis, avenue Jean-Jaurès, 45100 Orléans", "3 BIS AVENUE JEAN JAURES"),
    ("Bât. B, 7 rue du Faubourg-Bannier, 45000 Orléans", "7 RUE DU FAUBOURG BANNIER"),
])
def test_street_line_is_one_line_without_punctuation(address: str, street: str) -> None:
    block = address_block("Mme Martin", address)
    assert block[-2] == street and block[-1].split()[0] in ("45000", "45100")
    for line in block[-2:]:  # La Poste: no punctuation from line 4 down, capitals, no accents
        assert re.fullmatch(r"[A-Z0-9 ]+", line), line


def test_a_long_street_is_abbreviated_not_wrapped() -> None:
    block = address_block("M. Durand", "118 allée du Maréchal de Lattre de Tassigny, 45160 Saint-Hilaire-Saint-Mesmin")
    assert block == ["M. Durand", "118 ALL DU MAL DE LATTRE DE TASSIGNY", "45160 SAINT HILAIRE SAINT MESMIN"]
    very_long = address_block("X", "2 promenade des Anciens Combattants et Victimes de Guerre, 45000 Orléans")
    assert len(very_long) == 3 and len(very_long[1]) <= MAX_CHARS and very_long[1].startswith("2 PROM DES ")


def letter(tmp_path: Path, addressee: tuple[str, ...], dated: str = "Orléans, le 21 novembre 2026") -> bytes:
    config = RemindersConfig(contact={"organisation": "Orléans Métropole", "place": "Orléans"})
    text = MessageTemplates(config, RULES).render("letter", TemplateData(
        "household", 1, "M. X", "Rue A", 9, 3, {"verre": 2}, date(2026, 10, 22), date(2026, 11, 20),
        today=date(2026, 11, 21), name="M. X", address="1 rue A, 45000 Orléans", reference="R1-7"))
    header = LetterHeader(("Orléans Métropole", "5 place du 6 juin 1944", "45000 ORLEANS"), addressee, dated)
    return letter_pdf(text, (), "Courrier", header)


def test_only_the_address_shows_in_the_window(tmp_path: Path) -> None:
    """The folded sheet slides in the envelope: whatever the window can show is the address, which
    stays inside what it always shows; the date line was 38 mm below the address, in the window."""
    block = ("Mme Bérénice de La Tour d'Auvergne", "Résidence du Parc, bâtiment C",
             "118 ALL DU MAL DE LATTRE DE TASSIGNY", "45160 SAINT HILAIRE SAINT MESMIN")
    first = render(letter(tmp_path, block))[0]
    rows = WINDOW_Y_MM + 6 * 5.2  # six lines at most
    x0, y0, x1, y1 = WINDOW_REACH_MM
    assert ink(first, (WINDOW_X_MM, WINDOW_Y_MM, 188, WINDOW_Y_MM + 20)) > 0.01  # the address is there
    assert ink(first, (x0, y0, x1, WINDOW_Y_MM)) == 0  # above it
    assert ink(first, (x0, rows, x1, y1)) == 0  # below it: no date where the machines read the postcode
    assert ink(first, (x0, WINDOW_Y_MM, WINDOW_X_MM - 0.5, rows)) == 0  # left of it
    assert ink(first, (190, WINDOW_Y_MM, x1, rows)) == 0  # right of what the window always shows
    text = " ".join(PdfReader(io.BytesIO(letter(tmp_path, block))).pages[0].extract_text().split())
    assert "Orléans, le 21 novembre 2026" in text


def test_place_and_date_line(tmp_path: Path) -> None:
    def header(place: str) -> str:
        config = RemindersConfig(contact={"place": place})
        dispatcher = Dispatcher.__new__(Dispatcher)  # header() needs only the configuration
        dispatcher.config = config
        return dispatcher.header(TemplateData("household", 1, "", "", 1, 1, {}, TODAY, TODAY,
                                              today=date(2026, 12, 5), address="1 rue A, 45000 Orléans")).dated

    assert header("Orléans") == "Orléans, le 5 décembre 2026" and header("") == "Le 5 décembre 2026"


def test_french_spacing() -> None:
    assert french_spacing("Objet : rappel ; vraiment ? oui ! 15 % « STOP »") == \
        f"Objet{NBSP}: rappel{NNBSP}; vraiment{NNBSP}? oui{NNBSP}! 15{NBSP}% «{NBSP}STOP{NBSP}»"
    assert french_spacing("https://tri.example.fr/a?b=1 R12-3 14:30") == "https://tri.example.fr/a?b=1 R12-3 14:30"


def test_no_line_of_a_letter_starts_with_a_colon_or_question_mark() -> None:
    """The wrap used to leave « : », « ; », « ? » or « » » at the start of a line, « « » at its end."""
    broken = []
    for n in range(40, 120):
        text = "Texte " + "a" * n + " mot mot mot fin : suite ; encore ? et « STOP » oui"
        for line in PdfReader(io.BytesIO(letter_pdf(text))).pages[0].extract_text().splitlines():
            if line.strip()[:1] in (":", ";", "?", "!", "»") or line.rstrip().endswith("«"):
                broken.append((n, line))
    assert not broken, broken[:3]


def notice_config() -> RemindersConfig:
    return RemindersConfig(contact={"organisation": "Service déchets", "controller": "Orléans Métropole",
                                    "dpo": "dpo@orleans-metropole.fr",
                                    "privacy_url": "https://www.orleans-metropole.fr/donnees"})


MESSAGE = TemplateData("household", 1, "M. X", "Rue A", 9, 3, {"verre": 2}, date(2026, 10, 22),
                       date(2026, 11, 20), reference="R4-17")


@pytest.mark.parametrize("template", ["letter", "email"])
def test_rgpd_notice_in_letters_and_emails(template: str) -> None:
    """Art. 13/14: controller, purpose, legal basis, recipients, retention (the server's), rights, DPO,
    CNIL. The periods are the server's settings, not a text that goes stale when they change."""
    templates = MessageTemplates(notice_config(), RULES, Retention(lifts_days=200, photos_days=15,
                                                                    reminders_days=400))
    text = " ".join(plain_text(templates.render(template, MESSAGE)).split())
    for words in ("Orléans Métropole est responsable de ce traitement", "article 6-1-e du RGPD",
                  "mission d'intérêt public", "15 jours pour les photos", "200 jours pour les relevés",
                  "anonymisé 400 jours", "jusqu'à ce que vous demandiez leur effacement", "vous opposer",
                  "délégué à la protection des données : dpo@orleans-metropole.fr", "référence R4-17",
                  "https://www.orleans-metropole.fr/donnees", "réclamation à la CNIL"):
        assert words in text, words
    default = " ".join(MessageTemplates(RemindersConfig(), RULES).render(template, MESSAGE).split())
    assert "Service déchets de la Métropole est responsable" in default and "30 jours pour les photos" in default
    assert "à l'attention du délégué à la protection des données" in default


def test_a_letter_with_its_notice_has_no_lonely_last_page(tmp_path: Path) -> None:
    text = MessageTemplates(notice_config(), RULES).render("letter", TemplateData(
        "household", 1, "M. X", "Rue A", 9, 3, {"verre": 2, "sac_ferme": 1}, TODAY, TODAY, reference="R1-1"))
    header = LetterHeader(("Orléans Métropole",), tuple(address_block("M. X", "1 rue A, 45000 Orléans")),
                          "Le 1er décembre 2026")
    pages = PdfReader(io.BytesIO(letter_pdf(text, (), "Courrier", header))).pages
    assert len(" ".join(pages[-1].extract_text().split())) > 400


def test_sms_sender_is_what_a_phone_can_show() -> None:
    assert SmsChannel(url="https://sms.example.fr", sender="ORLEANSMET").sender == "ORLEANSMET"
    assert SmsChannel(url="https://sms.example.fr", sender="+33612345678").sender == "+33612345678"
    for bad in ("Orléans Métropole", "ORLEANSMETROPOLE", "12"):  # accented, over 11 characters, no letter
        with pytest.raises(ValueError, match="sender"):
            SmsChannel(url="https://sms.example.fr", sender=bad)


@pytest.mark.parametrize(("moment", "allowed"), [
    (datetime(2026, 12, 7, 9, 0, tzinfo=PARIS), True),  # Monday 9:00
    (datetime(2026, 12, 5, 19, 59, tzinfo=PARIS), True),  # Saturday 19:59
    (datetime(2026, 12, 7, 7, 59, tzinfo=PARIS), False),
    (datetime(2026, 12, 7, 20, 0, tzinfo=PARIS), False),
    (datetime(2026, 12, 8, 2, 0, tzinfo=UTC), False),  # 3:00 in Orléans
    (datetime(2026, 12, 6, 11, 0, tzinfo=PARIS), False),  # Sunday
    (datetime(2026, 12, 25, 11, 0, tzinfo=PARIS), False),  # Christmas, a Friday
    (datetime(2027, 3, 29, 11, 0, tzinfo=PARIS), False),  # Easter Monday 2027
    (datetime(2026, 5, 14, 11, 0, tzinfo=PARIS), False),  # Ascension 2026
])
def test_sms_hours(moment: datetime, allowed: bool) -> None:
    assert REAL_SMS_ALLOWED(moment, PARIS) is allowed


def test_an_sms_waits_for_the_morning(city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A send run from cron at 3 a.m. leaves SMS items approved; e-mail and letters are not held."""
    monkeypatch.setattr(sms_hours, "sms_allowed", REAL_SMS_ALLOWED)
    rules = RemindersConfig(channels={"order": ["sms"], "sms": {"url": "http://127.0.0.1:9/none"}})
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Nuit", "test", rules)
        session.flush()
        households = [i for i in session.scalars(select(Item).where(Item.campaign_id == campaign.id))
                      if i.kind == HOUSEHOLD]
        assert households
        csv = "key,phone\n" + "".join(f"{i.target_key},06 98 76 54 {n:02d}\n" for n, i in enumerate(households))
        import_contacts(session, csv, "test", "contacts.csv")
        for item in households:
            review(session, item.id, Decision(True), "test")
        session.commit()

        def send(at: datetime) -> list[str]:
            report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test", sorting_rules=RULES,
                                today=TODAY, clock=lambda: at.astimezone(UTC)).send_campaign(campaign.id)
            session.commit()
            return report.waiting

        waiting = send(datetime(2026, 11, 20, 3, 0, tzinfo=PARIS))
        assert len(waiting) == len(households) and "du lundi au samedi de 8 h à 20 h" in waiting[0]
        assert {i.status for i in households if session.refresh(i) is None} == {"approved"}
        assert send(datetime(2026, 11, 20, 10, 0, tzinfo=PARIS)) == []  # Friday 10:00: they go (and the
        assert {i.status for i in households if session.refresh(i) is None} == {"retry"}  # gateway is down)
