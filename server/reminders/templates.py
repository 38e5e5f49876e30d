"""The texts households and streets receive: Jinja2 templates the collectivité can edit.

Templates live in ``server/templates/reminders`` (one per channel, one paragraph per error
type under ``errors/``); a deployment points ``templates_dir`` at its own copies, which are
looked up first. A rendered letter is plain text with a light layout convention that
``server.letters`` turns into a PDF: ``# `` title, ``## `` heading, ``- `` bullet, ``[photo]``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from server.reminders.config import DEFAULT_SMS_SENDER, RemindersConfig, number_sender
from server.reminders.phrases import plural
from server.reminders.postal import greeting
from vision.rules import SortingRules

PACKAGED = Path(__file__).resolve().parent.parent / "templates" / "reminders"
TEMPLATES = {"letter": "letter.txt.j2", "street": "street.txt.j2", "thanks": "thanks.txt.j2",
             "email": "email.txt.j2", "sms": "sms.txt.j2"}
def most_first(categories: Mapping[str, int]) -> list[tuple[str, int]]:
    """Error categories by lifts, most first, equal counts by code: the one order of a reason, a
    letter, an item and a route sheet (equal counts came in a set's order, which changes with each
    process's string hashing)."""
    return sorted(categories.items(), key=lambda item: (-item[1], item[0]))


CATEGORY_LABELS = {
    "sac_ferme": "sacs fermés", "emballage": "emballages", "papier": "papiers", "verre": "verre",
    "vaisselle": "vaisselle ou verre de table",
    "biodechet": "déchets alimentaires", "textile": "textiles", "deee": "appareils électriques",
    "dangereux": "piles, batteries ou bouteilles de gaz", "soins": "médicaments ou déchets de soins",
}
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")


@dataclass(frozen=True, slots=True)
class Retention:
    """The server's retention settings, in days, as the letters' data notice states them
    (``retention_days``, ``evidence_retention_days``, ``reminder_retention_days``; docs/privacy.md)."""

    lifts_days: int = 365
    photos_days: int = 30
    reminders_days: int = 365

    @classmethod
    def of(cls, settings: Any) -> Retention:
        return cls(settings.retention_days, settings.evidence_retention_days, settings.reminder_retention_days)


class TemplateError(ValueError):
    """A template that is missing or does not render; names the template."""


def french_date(day: date) -> str:
    return f"{'1er' if day.day == 1 else day.day} {MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True, slots=True)
class TemplateData:
    """What a template is rendered with; built from a campaign item (or a preview)."""

    kind: str  # household, street, thanks
    level: int
    recipient: str
    street: str
    lifts: int
    contaminated: int
    categories: dict[str, int]
    since: date
    until: date
    reason: str = ""
    today: date = field(default_factory=date.today)
    reference: str = ""  # quoted by a resident who opts out: names the message, not the household
    name: str | None = None  # the household's name when the contacts hold one (greeting, address block)
    address: str = ""  # postal address, ending with "<postcode> <commune>" (letters)
    photos: int = 0  # evidence photos attached to the e-mail (the purge may have taken them)
    # The household is its bin's RFID tag (key bin:...); else its address, placed by the truck's position:
    # the data notice names what was used, never a bin identifier nobody read.
    tagged: bool = False


class MessageTemplates:
    """The templates of ``config`` (its ``templates_dir`` first), rendered with the server's sorting
    rules (``sorting_rules``: the file the trucks judge by) as the local rules households read."""

    def __init__(self, config: RemindersConfig, sorting_rules: SortingRules,
                 retention: Retention | None = None) -> None:
        self.config = config
        self.sorting_rules = sorting_rules
        self.retention = retention or Retention()
        loaders = [FileSystemLoader(str(PACKAGED))]
        if config.templates_dir is not None:
            loaders.insert(0, FileSystemLoader(str(config.templates_dir)))
        self.env = Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=False, trim_blocks=False)
        self.env.globals["plural"] = plural  # {{ plural(n, "levée", "levées") }}

    @cached_property
    def rules(self) -> list[dict[str, Any]]:
        """What goes in each bin, stream by stream in the words and order of the server's rules file.

        Every stream of that file, and only those: the file is the deployment's, and its streams are
        the ones its trucks collect (a truck refuses a stream its file lacks), so a collectivité without
        a paper collection deletes ``paper`` from its copy. Not ``household.streams``: that says which
        streams' contamination targets a household, while the letter reminds every bin it has (a glass
        bottle in the bac jaune is best answered by where glass goes). A stream that accepts nothing
        is left out: there is nothing to put in it."""
        spec = self.sorting_rules.spec
        return [{"stream": stream.value, "label": rule.label,
                 "accepted": [spec.classes[name].label.lower() for name in rule.accepted]}
                for stream, rule in spec.streams.items() if rule.accepted]

    def context(self, message: TemplateData) -> dict[str, Any]:
        # A category the deployment's rules added (say `compostable`) is said in its classes' words,
        # not as its code: letters are read by households.
        errors = [{"category": c, "label": CATEGORY_LABELS.get(c) or self.sorting_rules.category_label(c).lower(),
                   "lifts": n}
                  for c, n in most_first(message.categories)]
        return {"level": message.level, "recipient": message.recipient, "street": message.street,
                "lifts": message.lifts, "contaminated": message.contaminated, "errors": errors,
                "since": french_date(message.since), "until": french_date(message.until),
                "today": french_date(message.today), "reason": message.reason,
                "contact": self.config.contact.model_dump(), "rules": self.rules, "reference": message.reference,
                # the streams collected here: an error's advice names a bin only where it exists
                "collected": [rule["stream"] for rule in self.rules],
                "greeting": greeting(message.name), "photos": message.photos, "tagged": message.tagged,
                "privacy": {"controller": self.config.contact.controller or self.config.contact.organisation,
                            "dpo": self.config.contact.dpo, "url": self.config.contact.privacy_url,
                            "retention": {"lifts": self.retention.lifts_days, "photos": self.retention.photos_days,
                                          "reminders": self.retention.reminders_days}},
                "opt_out": {"email": self.opt_out_email(), "url": self.config.contact.opt_out_url,
                            "sms": sms_opt_out(self.config)}}

    def opt_out_email(self) -> str:
        """Where a resident writes STOP: the configured address, the service's, else the sender's."""
        smtp = self.config.channels.smtp
        return self.config.contact.opt_out_email or self.config.contact.email or (smtp.sender if smtp else "")

    def list_unsubscribe(self, reference: str) -> str:
        """RFC 2369 ``List-Unsubscribe``: a mailto with the reference in the subject, and the page if any."""
        subject = urllib.parse.quote(f"STOP rappels de tri {reference}".strip())
        targets = [f"<mailto:{self.opt_out_email()}?subject={subject}>"]
        if self.config.contact.opt_out_url:
            targets.append(f"<{self.config.contact.opt_out_url}>")
        return ", ".join(targets)

    def render(self, name: str, message: TemplateData) -> str:
        """Render ``letter``, ``street``, ``thanks``, ``email`` or ``sms`` (a template name)."""
        template_name = TEMPLATES.get(name)
        if template_name is None:
            raise TemplateError(f"modèle {name!r} inconnu : attendu l'un de {', '.join(TEMPLATES)}")
        try:
            text = self.env.get_template(template_name).render(self.context(message))
        except TemplateNotFound as error:
            raise TemplateError(f"modèle {error.name!r} introuvable") from None
        except Exception as error:  # an edited template must fail with its name, not a traceback
            raise TemplateError(f"modèle {template_name} : {type(error).__name__} : {error}") from None
        return _tidy(text)

    def document_for(self, kind: str) -> str:
        return {"household": "letter", "street": "street", "thanks": "thanks"}[kind]


def plain_text(text: str) -> str:
    """A rendered letter without its layout marks, for e-mail bodies."""
    lines = [line.lstrip("#").strip() if line.startswith("#") else line for line in text.splitlines()
             if line.strip() != "[photo]"]
    return _tidy("\n".join(lines))


def _tidy(text: str) -> str:
    """Collapse the blank lines Jinja blocks leave, keep paragraph breaks."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"


def sms_opt_out(config: RemindersConfig) -> str:
    """The SMS's last line: how the resident refuses further reminders. ``sms.opt_out`` when set;
    « répondez STOP » only when the sender is a number (a phone cannot reply to a name); else the
    service's opt-out page, e-mail or phone; "" when the rules give none (a public service's SMS
    needs no « STOP SMS », docs/reminders.md "Judgement calls")."""
    sms = config.channels.sms
    if sms and sms.opt_out:
        return sms.opt_out
    if number_sender(sms.sender if sms else DEFAULT_SMS_SENDER):
        return "STOP : répondez STOP"
    contact, smtp = config.contact, config.channels.smtp
    where = (contact.opt_out_url.split("://", 1)[-1].rstrip("/") or contact.opt_out_email or contact.email
             or (parseaddr(smtp.sender)[1] if smtp else "") or contact.phone)
    return f"STOP : {where}" if where else ""
