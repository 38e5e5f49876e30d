"""Households' personal data and rights: contact import, opt-out, erasure on request.

Contacts (names, e-mails, phone numbers, postal addresses of RFID bins) are personal data: they
sit in ``reminder_contacts`` only, apart from lift data, and are read by managers and admins
only. Erasing a household deletes its contact, anonymises its reminder items (the campaign's
counts stay, the household is no longer identifiable there), empties the dead letters naming its
bins (``server.reminders.dead_letters``) and can record an opt-out, which
keeps only the household key so the opposition is honoured later; an opt-in lifts it (``opt_in``).
Everything is audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from server.audit import audit
from server.db import utcnow
from server.ingest.models import Lift
from server.reminders.contacts_import import ContactFileError, read_contact_file
from server.reminders.dead_letters import forget_letters, letters_naming
from server.reminders.expiry import ERASED_PREFIX
from server.reminders.letter_files import delete_letter
from server.reminders.mailbox import MailboxError, smtp_mailbox
from server.reminders.models import APPROVED, FAILED, PENDING, RETRY, Campaign, Channel, Contact, Item, OptOut
from server.reminders.phrases import plural
from server.reminders.route_sheets import on_sheet, rewrite_sheets
from server.reminders.sms_text import PhoneError, e164
from server.reminders.targets import HouseholdKey
from server.streets.models import Address, Bin

CONTACT_COLUMNS = ("key", "name", "email", "phone", "postal_address")
# Items not sent that a send or a retry could still send: an opposition or an erasure drops them all
# (a retry left behind went out, or failed, after the household had said no).
UNSENT = (PENDING, APPROVED, RETRY, FAILED)


class HouseholdError(ValueError):
    """A refused operation on a household's data, in French."""


class UnknownHousehold(HouseholdError):
    """No data at all for this key: nothing to erase (the API answers 404)."""


class NoOpposition(HouseholdError):
    """No opposition recorded under this key: nothing to lift (the API answers 404)."""


def check_key(key: str) -> str:
    """The key as items, contacts and opt-outs store it: ``address:03`` is ``address:3``, else an
    opposition recorded under the typed form never met the household's items (they say ``address:3``)."""
    try:
        return str(HouseholdKey.parse(key))
    except ValueError:
        raise HouseholdError(f"clé de foyer {key!r} : attendu address:<n° d'adresse> ou bin:<puce du bac>") from None


@dataclass(frozen=True, slots=True)
class ContactImport:
    imported: int  # new households
    updated: int  # households already on file, their details replaced
    errors: tuple[str, ...]  # refused lines, "ligne N : why"
    unknown_columns: tuple[str, ...] = ()
    encoding: str = "UTF-8"
    delimiter: str = ","

    def json(self) -> dict[str, object]:
        return {"imported": self.imported, "updated": self.updated, "refused": len(self.errors),
                "errors": list(self.errors), "unknown_columns": list(self.unknown_columns),
                "encoding": self.encoding, "delimiter": self.delimiter}

    def summary(self) -> str:
        added, refused = self.imported, len(self.errors)
        text = (f"{added} {plural(added, 'contact ajouté', 'contacts ajoutés')}, {self.updated} mis à jour, {refused} "
                f"{plural(refused, 'ligne refusée', 'lignes refusées')} (fichier {self.encoding}, séparateur « "
                f"{self.delimiter} »)")
        if self.unknown_columns:
            text += f" ; colonnes ignorées : {', '.join(self.unknown_columns)}"
        return text


def import_contacts(session: Session, data: bytes | str, actor: str, source: str) -> ContactImport:
    """Upsert contacts from a CSV file (``server.contacts_import``); bad lines are reported, never stored."""
    try:
        parsed = read_contact_file(data)
    except (ContactFileError, UnicodeDecodeError) as error:
        raise HouseholdError(f"{source} : {error}") from None
    errors, imported, updated = list(parsed.errors), 0, 0
    for line, row in parsed.rows:
        problem = _row_problem(row)
        if problem:
            errors.append(f"ligne {line} : {problem}")
            continue
        if row.get("phone"):
            row["phone"] = e164(row["phone"])
        key = check_key(row["key"])  # as items name it (address:03 is address:3)
        contact = session.get(Contact, key)
        if contact is None:
            contact = Contact(key=key)
            imported += 1
        else:
            updated += 1
        for column in CONTACT_COLUMNS[1:]:
            if column in parsed.columns:
                setattr(contact, column, row.get(column) or None)
        contact.source, contact.updated_at = source[:120], utcnow()
        session.add(contact)
        session.flush()  # a key twice in one file: the second line updates the first
    errors.sort(key=lambda e: int(e.split()[1]))
    audit(session, actor, "reminders.contacts.import", source[:256],
          f"{imported} added, {updated} updated, {len(errors)} refused")
    return ContactImport(imported, updated, tuple(errors), tuple(parsed.unknown), parsed.encoding, parsed.delimiter)


def _row_problem(row: dict[str, str]) -> str:
    key = row.get("key", "")
    try:
        HouseholdKey.parse(key)
    except ValueError:
        return f"clé {key!r} : attendu address:<n°> ou bin:<puce>"
    for column in ("name", "email", "postal_address"):  # PostgreSQL refused these with a 500, whole file lost
        value, size = row.get(column, ""), Contact.__table__.c[column].type.length
        if len(value) > size:
            return f"{column} : {len(value)} caractères, {size} au plus"
        if any(unicodedata.category(c) == "Cc" for c in value):
            return f"{column} : caractère de contrôle (tabulation, octet nul…)"
    email, phone = row.get("email", ""), row.get("phone", "")
    if email:
        try:
            smtp_mailbox(email)  # what the mailer will need: refused now, not retried at send time
        except MailboxError as error:
            return str(error)
    if phone:
        try:
            e164(phone)
        except PhoneError as error:
            return str(error)
    return ""


def unknown_note(key: str) -> str:
    """What an opposition for a key Trivue knows nothing of says besides: recorded in advance, but a
    typo (``address:999999``) must be noticed, not answered as if a household had been found."""
    return (f"{key} : Trivue ne connaît encore rien de ce foyer (ni adresse, ni bac au registre, ni levée, ni "
            "contact, ni rappel) : opposition enregistrée d'avance, vérifiez la clé")


def held_unsaid(key: str) -> str:
    """What a manager reads, the household level off, instead of what Trivue holds on ``key`` (whether
    its address or bin is in the registry, how many lifts carry it): said, it would let them walk
    through tags and addresses the switch hides. An admin reads it in the access file."""
    return (f"{key} : le niveau foyer est désactivé, la réponse ne dit pas ce que Trivue tient sur ce foyer "
            "(adresse ou bac au registre, levées) ; un administrateur le lit dans le droit d'accès")


def lifts_named(household: HouseholdKey) -> ColumnElement[bool]:
    """The lifts that carry the household's bin tag, or its address."""
    return Lift.bin_id == household.bin_id if household.bin_id else Lift.address_id == household.address_id


def known_household(session: Session, key: str) -> bool:
    """Whether anything but an opposition names ``key`` (as ``check_key`` writes it): its address or
    bin in the registry, a lift, a refused message naming the bin, a contact or a reminder."""
    household = HouseholdKey.parse(key)
    place = session.get(Bin, household.bin_id) if household.bin_id else session.get(Address, household.address_id)
    return (place is not None or session.get(Contact, key) is not None
            or session.scalar(select(Item.id).where(Item.target_key == key).limit(1)) is not None
            or session.scalar(select(Lift.id).where(lifts_named(household)).limit(1)) is not None
            or bool(household.bin_id and letters_naming(session, household)))


def opt_out(session: Session, key: str, actor: str, note: str | None = None) -> str:
    """Record the opposition and drop the unsent items; returns the key as stored."""
    key = check_key(key)
    if session.get(OptOut, key) is None:
        session.add(OptOut(key=key, at=utcnow(), by=actor, note=note))
    # Items not yet sent to this household are dropped now, not at send time only.
    session.execute(update(Item).where(Item.target_key == key, Item.status.in_(UNSENT))
                    .values(status="skipped", send_detail="opposition du foyer"))
    audit(session, actor, "reminders.household.opt_out", key, note)
    return key


def opt_in(session: Session, key: str, actor: str, note: str | None = None) -> str:
    """Lift the opposition recorded under ``key`` (the household changed its mind, or the agent typed
    another key); returns the key as stored. ``NoOpposition`` when none is recorded: nothing is done.

    Only the next plan sees the household again: the items dropped while it was opposed stay
    « écarté » (a letter made while it said no must not go out now). The audit entry keeps when and by
    whom the lifted opposition had been recorded, the only trace of it once the row is gone."""
    key = check_key(key)
    found = session.get(OptOut, key)
    if found is None:
        raise NoOpposition(no_opposition(key))
    session.delete(found)
    note = (note or "").strip()[:500] or None
    audit(session, actor, "reminders.household.opt_in", key,
          f"opposition recorded {found.at:%Y-%m-%d %H:%M} UTC by {found.by}" + (f"; note={note}" if note else ""))
    return key


def no_opposition(key: str) -> str:
    return f"aucune opposition enregistrée pour le foyer {key} : rien n'a été levé (vérifiez la clé)"


def opted_in(key: str) -> str:
    return f"{key} : recevra de nouveau des rappels, à partir de la prochaine campagne"


def list_opt_outs(session: Session, actor: str) -> list[dict[str, Any]]:
    """Every opposition (keys and the requests' notes name households): the read itself is audited."""
    rows = list(session.scalars(select(OptOut).order_by(OptOut.at.desc(), OptOut.key)))
    n = len(rows)
    audit(session, actor, "reminders.household.opt_outs.read", None, f"{n} {plural(n, 'opposition', 'oppositions')}")
    return [{"key": row.key, "at": row.at.isoformat(), "by": row.by, "note": row.note} for row in rows]


def erase_household(session: Session, key: str, actor: str, keep_opt_out: bool = True,
                    note: str | None = None, letters_root: Path | None = None) -> dict[str, Any]:
    """Delete the household's personal data; anonymise its items. Returns what was done.

    A key Trivue holds nothing about raises ``UnknownHousehold`` and records nothing (a typo must
    not leave an opposition for someone else). ``note`` (the request's reference, say) is kept in
    the audit log and on the opposition. An item forgets at least what the retention's expiry makes
    it forget (``server.reminders.expiry``): the reviewer's note, the delivery detail (an SMTP reply
    quotes the e-mail address, a letter's detail is its file), the Message-ID, and the letter's PDF
    in ``letters_root`` (``<data_dir>/reminders``); the campaigns' recorded exclusions lose it too.
    A letter it could not delete (not found, or outside the server's folder) is in ``letters_missing``.
    The route sheets that listed it as a visit are rewritten (``server.reminders.route_sheets``); one
    not rewritten is in ``route_sheets_missing``.
    Dead letters naming the household's bins (``server.reminders.dead_letters``) lose their payloads.
    A key with only lifts is refused too, saying they are kept and why (``nothing_to_erase``).
    """
    key = check_key(key)
    items = list(session.scalars(select(Item).where(Item.target_key == key)))
    refused = letters_naming(session, HouseholdKey.parse(key))
    known = items or refused or session.get(Contact, key) is not None or session.get(OptOut, key) is not None
    if not known:
        raise UnknownHousehold(nothing_to_erase(session, key))
    contacts = session.execute(delete(Contact).where(Contact.key == key)).rowcount or 0
    letters, missing = 0, []
    visited = {item.campaign_id for item in items if on_sheet(item)}
    for item in items:
        if item.channel == Channel.letter and item.send_detail:
            removal = delete_letter(item, letters_root)
            letters += removal.deleted
            if removal.problem:  # said, never a silent success: the letter names the household
                missing.append(removal.problem)
        item.forget_household(ERASED_PREFIX)
        item.review_note = item.message_id = item.send_detail = None
        if item.status in UNSENT:
            item.status, item.send_detail = "skipped", "données effacées à la demande du foyer"
    session.flush()
    sheets = rewrite_sheets(session, visited, letters_root)
    excluded = _forget_exclusion(session, HouseholdKey.parse(key))
    dead_letters = forget_letters(session, refused)
    note = (note or "").strip()[:500] or None
    if keep_opt_out:
        opt_out(session, key, actor, f"effacement des données ({note})" if note else "effacement des données")
    else:
        session.execute(delete(OptOut).where(OptOut.key == key))
    audit(session, actor, "reminders.household.erase", key,
          f"contacts={contacts} items={len(items)} letters={letters} exclusions={excluded} "
          f"dead_letters={dead_letters}"
          f" route_sheets={sheets.rewritten}"
          + (f" letters_missing={len(missing)}" if missing else "")
          + (f" route_sheets_missing={len(sheets.problems)}" if sheets.problems else "")
          + (f" note={note}" if note else ""))
    return {"contacts": contacts, "items": len(items), "letters": letters, "opted_out": int(keep_opt_out),
            "letters_missing": missing, "dead_letters": dead_letters, "route_sheets": sheets.rewritten,
            "route_sheets_missing": sheets.problems}


def nothing_to_erase(session: Session, key: str) -> str:
    """The answer to an erasure that finds nothing it may erase: the lifts attributed to the key, if
    any, are kept on purpose (the street-level measurement, a public-interest task, art. 17-3-b) until
    their own retention; saying « aucune donnée » would be untrue (docs/privacy.md §1 quinquies)."""
    lifts = session.scalar(select(func.count()).select_from(Lift).where(lifts_named(HouseholdKey.parse(key)))) or 0
    if not lifts:
        return f"aucune donnée pour le foyer {key} : rien n'a été effacé ni enregistré"
    kept = f"{plural(lifts, 'sa', 'ses')} {lifts} {plural(lifts, 'levée est gardée', 'levées sont gardées')}"
    return (f"foyer {key} : ni contact, ni rappel, ni opposition, ni message refusé à effacer ; {kept} "
            "jusqu'à la fin de leur durée de conservation (photos comprises), pour la "
            "mesure du tri par rue, mission d'intérêt public (RGPD art. 17-3-b) : rien n'a été effacé ni "
            "enregistré")


def _forget_exclusion(session: Session, household: HouseholdKey) -> int:
    """Campaigns whose recorded rules excluded this household by address or bin: it leaves them."""
    changed = 0
    for campaign in session.scalars(select(Campaign)):
        exclude = (campaign.rules or {}).get("exclude") or {}
        field, value = ("bins", household.bin_id) if household.bin_id else ("addresses", household.address_id)
        listed = exclude.get(field) or []
        if value in listed or str(value) in [str(v) for v in listed]:
            kept = [v for v in listed if str(v) != str(value)]
            campaign.rules = {**campaign.rules, "exclude": {**exclude, field: kept}}
            changed += 1
    return changed


def list_contacts(session: Session, actor: str) -> list[dict[str, str | None]]:
    """Every contact (personal data): the read itself is audited."""
    audit(session, actor, "reminders.contacts.read")
    return [{c: getattr(contact, c) for c in CONTACT_COLUMNS}
            for contact in session.scalars(select(Contact).order_by(Contact.key))]
