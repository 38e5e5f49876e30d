"""The reminders' configuration: targeting rules, escalation, quiet periods, exclusions, channels.

One strict YAML file (``reminders/targeting.yaml`` is the documented default), read by
``trivue reminders ... --rules FILE`` and by the server (``TRIVUE_REMINDERS_RULES``). Unknown keys
and bad values stop everything with a message naming the field and the value. There is no
setting that refuses a household's collection: the strongest level is a visit.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from base.bin_tags import canonical_tag
from base.strict_yaml import describe, read_mapping
from server.reminders.mailbox import MailboxError, smtp_mailbox
from vision.schema import Stream

RULES_ENV = "TRIVUE_REMINDERS_RULES"
ACTIONS = ("information", "rappel", "visite")


class ReminderConfigError(ValueError):
    """A configuration that cannot be used; the message names the field and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Strict):
    action: Literal["information", "rappel", "visite"] = Field(
        description="information: letter with the photo; rappel: firmer letter; visite: an ambassadeur du tri calls")


class QuietPeriod(_Strict):
    """No household message is planned or sent between ``start`` and ``end`` (inclusive).

    ``MM-DD`` repeats every year (``12-15`` to ``01-05`` spans the new year); ``YYYY-MM-DD`` is once.
    """

    start: str = Field(pattern=r"^(\d{4}-)?\d{2}-\d{2}$")
    end: str = Field(pattern=r"^(\d{4}-)?\d{2}-\d{2}$")
    reason: str = Field(min_length=1, max_length=120)

    @model_validator(mode="after")
    def _same_form(self) -> QuietPeriod:
        if (len(self.start) == 5) != (len(self.end) == 5):
            raise ValueError(f"start {self.start!r} and end {self.end!r} must both be MM-DD or both YYYY-MM-DD")
        for value in (self.start, self.end):
            _parse(value, 2000)  # raises on 02-30 and the like
        return self

    def contains(self, day: date) -> bool:
        if len(self.start) > 5:
            return _parse(self.start, 0) <= day <= _parse(self.end, 0)
        start, end = _parse(self.start, day.year), _parse(self.end, day.year)
        return start <= day <= end if start <= end else day >= start or day <= end


def _parse(value: str, year: int) -> date:
    try:
        return date.fromisoformat(value if len(value) > 5 else f"{year:04d}-{value}")
    except ValueError:
        if value[-5:] == "02-29":  # 29 February of a recurring period in a common year
            return date(year, 2, 28)
        raise ValueError(f"{value!r} is not a valid day") from None


class Exclusions(_Strict):
    addresses: list[int] = Field(default_factory=list, description="address ids never targeted")
    bins: list[str] = Field(default_factory=list, description="RFID bin ids never targeted")
    streets: list[int] = Field(default_factory=list, description="street ids never targeted (nor thanked)")

    @field_validator("bins")
    @classmethod
    def _canonical_tags(cls, bins: list[str]) -> list[str]:
        return [canonical_tag(tag) for tag in bins]  # as the lifts hold them (base.bin_tags)


class HouseholdRules(_Strict):
    min_contaminated_lifts: int = Field(default=2, ge=1, description="in window_days, to be targeted")
    window_days: int = Field(default=30, ge=1, le=365)
    cooldown_days: int = Field(default=21, ge=0, description="between two messages to the same household")
    escalation_memory_days: int = Field(default=180, ge=1, description="earlier messages count this long")
    min_address_confidence: float = Field(
        default=0.7, ge=0, le=1, description="below: the lift counts for its street only, never a household")
    streams: list[str] | None = Field(default=None, description="streams considered (default: all)")
    max_photos: int = Field(default=3, ge=1, le=10)

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, streams: list[str] | None) -> list[str] | None:
        # A misspelt stream would silently target nothing: lifts only ever carry Stream values.
        known = [stream.value for stream in Stream]
        unknown = [name for name in streams or [] if name not in known]
        if unknown:
            raise ValueError(f"flux inconnu {', '.join(map(repr, unknown))} (connus : {', '.join(known)})")
        return streams


class StreetRules(_Strict):
    min_lifts: int = Field(default=20, ge=1, description="lifts in the window to judge a street")
    min_rate: float = Field(default=0.15, ge=0, le=1, description="contamination rate for a street campaign")
    min_unattributed: int = Field(
        default=3, ge=1, description="contaminated lifts without a sure household that let a street with fewer "
        "than min_lifts lifts qualify; the rate must still reach min_rate")
    cooldown_days: int = Field(default=30, ge=0)


class ThanksRules(_Strict):
    enabled: bool = True
    min_lifts: int = Field(default=20, ge=1, description="lifts in the window (and the one before)")
    max_rate: float = Field(default=0.03, ge=0, le=1, description="a street at or below this is clean")
    min_improvement: float = Field(default=0.10, ge=0, le=1, description="rate drop from the previous window")
    cooldown_days: int = Field(default=90, ge=0)


class EffectRules(_Strict):
    window_days: int = Field(default=30, ge=7, le=365, description="before and after each street's send time")
    washout_days: float = Field(
        default=0, ge=0, le=60, description="lifts this long after the send count neither before nor after "
        "(0: the first collection after the message counts; e.g. 3 for letters La Poste delivers in J+3)")
    min_lifts: int = Field(default=50, ge=1, description="per group and period, below which we do not conclude")
    controls_per_street: int = Field(default=2, ge=1, le=10)
    max_smd: float = Field(default=0.25, gt=0, le=2,
                           description="balance: above this standardised mean difference, no conclusion")
    bootstrap: int = Field(default=2000, ge=200, le=20000)


def _mailbox(value: str) -> str:
    """One e-mail address the mailer can send to (``server.reminders.mailbox``), bare or with a
    display name (``Service déchets <dechets@example.fr>``): a typo here only showed when the first
    reminder bounced or a resident's reply went nowhere. The whole value must be that one mailbox:
    ``a@b.fr;c@d.fr`` or ``A <a@b.fr>, c@d.fr`` read as ``a@b.fr`` here while letters printed, and
    headers carried, the whole text."""
    if not value:
        return value
    _one_line(value)  # a line break is said as such, before the address is read
    name, address = parseaddr(value)
    if value.strip() not in (address, f"{name} <{address}>", f'"{name}" <{address}>'):
        raise ValueError(f"{value!r} n'est pas une adresse e-mail (nom@domaine.fr, ou Nom <nom@domaine.fr>)")
    try:
        smtp_mailbox(address)
    except MailboxError as error:  # says why: an accent before the @, an address that is no mailbox
        raise ValueError(f"{value!r} n'est pas une adresse e-mail utilisable ({error})") from None
    return value


def _one_line(value: str) -> str:
    """A value that ends up in a mail header, an SMS or a letter's line: a CR or LF in it (a YAML
    block scalar, a pasted signature) made the e-mail library refuse the message at send time, a
    500 with the item stuck in ``sending``; refused here, it stops start-up naming the field."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("une seule ligne attendue : retour à la ligne ou caractère de contrôle interdit")
    return value


def _one_line_each(values: list[str]) -> list[str]:
    return [_one_line(value) for value in values]


class Contact(_Strict):
    organisation: str = "Service déchets de la Métropole"
    postal_address: list[str] = Field(
        default_factory=list, max_length=4,
        description="the service's postal address under its name on letters, e.g. [\"5 place du 6 juin 1944\", "
        "\"45000 ORLEANS\"]")
    phone: str = ""
    email: str = ""
    website: str = ""
    signature: str = "Le service Prévention et gestion des déchets"
    opt_out_email: str = Field(
        default="", description="where residents write (or reply) STOP; default: email above, else the sender")
    opt_out_url: str = Field(default="", pattern=r"^(https?://.*)?$",
                             description="a page where residents refuse the reminders, if the service has one")
    place: str = Field(default="", description="the place in the letters' date line: \"Orléans\" prints "
                       "\"Orléans, le 5 décembre 2026\"")
    # The data notice of letters and e-mails (RGPD art. 13 and 14): who is responsible, how to reach
    # the data protection officer (every collectivité has one, art. 37-1-a) and the full notice.
    controller: str = Field(default="", description="the data controller (the collectivité); default: organisation")
    dpo: str = Field(default="", description="how to reach the data protection officer: an e-mail or postal address")
    privacy_url: str = Field(default="", pattern=r"^(https?://.*)?$",
                             description="the page with the full data protection notice, if any")

    _check_mailboxes = field_validator("email", "opt_out_email")(_mailbox)
    _check_lines = field_validator("organisation", "phone", "email", "website", "signature", "opt_out_email",
                                   "opt_out_url", "place", "controller", "dpo", "privacy_url")(_one_line)
    _check_address = field_validator("postal_address")(_one_line_each)


class SmtpChannel(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    ca_file: Path | None = Field(default=None, description="CA bundle to trust (self-hosted relay)")
    sender: str = Field(min_length=3, description="From: address")
    timeout_s: float = Field(default=20, gt=0)

    _check_sender = field_validator("sender")(_mailbox)
    _check_lines = field_validator("host", "username", "sender")(_one_line)

    @field_validator("sender")
    @classmethod
    def _ascii_envelope(cls, value: str) -> str:
        # The sender is the envelope's MAIL FROM: accented, every message needed SMTPUTF8 (not assumed).
        if not parseaddr(value)[1].isascii():
            raise ValueError(f"{value!r} : adresse d'expédition non ASCII (SMTPUTF8 n'est pas supposé)")
        return value


# What the phone shows when the rules name no sender: the service's subject, which residents
# recognise, rather than the software's name (TRIVUE until 2026-12-06), which none of them knows.
DEFAULT_SMS_SENDER = "INFODECHETS"
_NUMBER_SENDER = re.compile(r"\+?[0-9]{3,15}")
_NAME_SENDER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ]{1,9})[A-Za-z0-9]")


def number_sender(sender: str) -> bool:
    """A phone number as the sender: the only kind a resident's phone can reply to."""
    return bool(_NUMBER_SENDER.fullmatch(sender))


class SmsChannel(_Strict):
    url: str = Field(pattern=r"^https?://", description="gateway endpoint")
    encoding: Literal["json", "form"] = "json"
    fields: dict[str, str] = Field(
        default_factory=lambda: {"to": "{{ phone }}", "message": "{{ text }}"},
        description="request fields, Jinja2 over phone, text and sender")
    # What the phone shows as the sender: an alphanumeric name of 3 to 11 ASCII letters, digits or
    # inner spaces with at least one letter (the GSM limit and the French operators' rule; gateways
    # refuse or cut another one), or a number. Name the service ("ORLEANSMET"), which residents
    # recognise; a name takes no reply (see ``opt_out``).
    sender: str = Field(default=DEFAULT_SMS_SENDER,
                        description="sender shown on the phone: 3 to 11 letters or digits (one letter at least), "
                                    "or a number")
    country_code: str = Field(default="33", pattern=r"^[1-9]\d{0,2}$",
                              description="for national numbers (06…): sent as +<code>6…")
    opt_out: str = Field(default="", max_length=40,
                         description="how to refuse, at the end of each SMS (\"STOP au 36xxx\" for a gateway's "
                                     "short number); default: « STOP : répondez STOP » when the sender is a "
                                     "number, else the contact's opt-out page, e-mail or phone")
    token_env: str | None = Field(default=None, description="environment variable with a bearer token")
    timeout_s: float = Field(default=20, gt=0)

    _check_lines = field_validator("sender", "opt_out")(_one_line)

    @field_validator("sender")
    @classmethod
    def _phone_can_show(cls, value: str) -> str:
        if not (number_sender(value) or (_NAME_SENDER.fullmatch(value) and any(c.isalpha() for c in value))):
            raise ValueError(f"sender {value!r} : 3 à 11 lettres ASCII ou chiffres, dont une lettre au moins, "
                             "ou un numéro de téléphone")
        return value

    @model_validator(mode="after")
    def _reply_needs_a_number(self) -> SmsChannel:
        # A phone cannot answer an alphanumeric sender: « répondez STOP » would reach nobody.
        if not number_sender(self.sender) and "répond" in self.opt_out.lower():
            raise ValueError(f"opt_out {self.opt_out!r} : on ne peut pas répondre à l'expéditeur {self.sender!r} "
                             "(un nom, pas un numéro) : donnez le numéro court de la passerelle "
                             "(« STOP au 36xxx »), ou laissez vide pour la page, le courriel ou le téléphone "
                             "du service")
        return self

class RetryRules(_Strict):
    """Temporary failures (SMTP 4xx, timeouts, a gateway's 5xx) are tried again by later sends."""

    max_attempts: int = Field(default=5, ge=1, le=20, description="then the item fails for good")
    first_delay_s: int = Field(default=300, ge=0, description="wait before the second attempt, doubled each time")
    max_delay_s: int = Field(default=6 * 3600, ge=0)


class Channels(_Strict):
    order: list[Literal["email", "sms", "letter"]] = Field(
        default_factory=lambda: ["email", "sms", "letter"],
        description="first channel the household has contact details for; letter needs only the address")
    smtp: SmtpChannel | None = None
    sms: SmsChannel | None = None
    retry: RetryRules = Field(default_factory=RetryRules)
    sending_lease_s: int = Field(
        default=900, ge=1, description="an item claimed longer ago by a send that never finished (killed) is "
        "resolved by the next send")


class RemindersConfig(_Strict):
    version: Literal[1] = 1
    household: HouseholdRules = Field(default_factory=HouseholdRules)
    street: StreetRules = Field(default_factory=StreetRules)
    thanks: ThanksRules = Field(default_factory=ThanksRules)
    levels: list[Level] = Field(default_factory=lambda: [Level(action=a) for a in ACTIONS], min_length=1,
                                max_length=3)
    quiet_periods: list[QuietPeriod] = Field(default_factory=list)
    exclude: Exclusions = Field(default_factory=Exclusions)
    effect: EffectRules = Field(default_factory=EffectRules)
    contact: Contact = Field(default_factory=Contact)
    channels: Channels = Field(default_factory=Channels)
    templates_dir: Path | None = Field(default=None, description="the collectivité's own templates, first")

    @field_validator("levels")
    @classmethod
    def _increasing(cls, levels: list[Level]) -> list[Level]:
        order = [ACTIONS.index(level.action) for level in levels]
        if order != sorted(order):
            raise ValueError(f"levels must escalate (information, rappel, visite), got {[lv.action for lv in levels]}")
        return levels

    def quiet(self, day: date) -> QuietPeriod | None:
        return next((period for period in self.quiet_periods if period.contains(day)), None)

    def check_streams(self, collected: Sequence[str]) -> None:
        """``household.streams`` within the streams the server's sorting rules collect: one the
        rules lack has no lift to judge, so no household would ever be targeted for it."""
        missing = [name for name in self.household.streams or [] if name not in collected]
        if missing:
            raise ReminderConfigError(
                f"rules.household.streams : {', '.join(map(repr, missing))} absent des consignes de tri du serveur "
                f"(sorting_rules : {', '.join(collected)}) : aucun foyer ne serait ciblé pour ce flux")


def load_targeting(path: Path | None = None) -> RemindersConfig:
    """The file at ``path``, else ``$TRIVUE_REMINDERS_RULES``, else the built-in defaults."""
    path = path or (Path(os.environ[RULES_ENV]) if os.environ.get(RULES_ENV) else None)
    if path is None:
        return RemindersConfig()
    if not path.is_file():  # the common mistake, in the managers' words (the fields keep pydantic's)
        raise ReminderConfigError(f"{path} : fichier de règles introuvable")
    data = read_mapping(path, ReminderConfigError, "rules file")
    try:
        config = RemindersConfig.model_validate(data)
    except ValidationError as error:
        raise ReminderConfigError(describe(error, str(path), root="rules")) from None
    if config.templates_dir is not None and not config.templates_dir.is_absolute():
        config = config.model_copy(update={"templates_dir": (path.parent / config.templates_dir).resolve()})
    # Checked here, once resolved against the rules file: a missing folder would otherwise fall
    # back to the default templates and send letters the service never wrote.
    if config.templates_dir is not None and not config.templates_dir.is_dir():
        raise ReminderConfigError(f"{path}: rules.templates_dir: dossier introuvable ({config.templates_dir})")
    return config

