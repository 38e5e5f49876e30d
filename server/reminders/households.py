"""Households' personal data and rights: contact import, opt-out, erasure on request.

Contacts (names, e-mails, phone numbers, postal addresses of RFID bins) are personal data: they
sit in ``reminder_contacts`` only, apart from lift data, and are read by managers and admins
only. Erasing a household deletes its contact, anonymises its reminder items (the campaign's
counts stay, the household is no longer identifiable there) and can record an opt-out, which
keeps only the household key so the opposition is honoured later. Everything is audited.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.db import utcnow
from server.reminders.models import Contact, Item, OptOut
from server.reminders.targets import HouseholdKey
from server.web.auth import audit

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 .-]{6,20}$")
CONTACT_COLUMNS = ("key", "name", "email", "phone", "postal_address")


class HouseholdError(ValueError):
    pass


def check_key(key: str) -> str:
    try:
        HouseholdKey.parse(key)
    except ValueError as error:
        raise HouseholdError(str(error)) from None
    return key


@dataclass(frozen=True, slots=True)
class ContactImport:
    imported: int
    errors: tuple[str, ...]


def import_contacts(session: Session, text: str, actor: str, source: str) -> ContactImport:
    """Upsert contacts from CSV (``key,name,email,phone,postal_address``); bad rows are reported, not stored."""
    reader = csv.DictReader(io.StringIO(text))
    missing = set(CONTACT_COLUMNS[:1]) - set(reader.fieldnames or ())
    if missing:
        raise HouseholdError(f"{source}: missing column(s) {', '.join(sorted(missing))}; expected {CONTACT_COLUMNS}")
    errors, imported = [], 0
    for line, row in enumerate(reader, start=2):
        problem = _row_problem(row)
        if problem:
            errors.append(f"line {line}: {problem}")
            continue
        values = {c: (row.get(c) or "").strip() or None for c in CONTACT_COLUMNS[1:]}
        contact = session.get(Contact, row["key"].strip()) or Contact(key=row["key"].strip())
        for column, value in values.items():
            setattr(contact, column, value)
        contact.source, contact.updated_at = source[:120], utcnow()
        session.add(contact)
        imported += 1
    audit(session, actor, "reminders.contacts.import", source[:256], f"{imported} imported, {len(errors)} refused")
    return ContactImport(imported, tuple(errors))


def _row_problem(row: dict[str, str | None]) -> str:
    key = (row.get("key") or "").strip()
    try:
        HouseholdKey.parse(key)
    except ValueError:
        return f"key {key!r} is not address:<id> or bin:<rfid>"
    email, phone = (row.get("email") or "").strip(), (row.get("phone") or "").strip()
    if email and not EMAIL.match(email):
        return f"e-mail {email!r} is not valid"
    if phone and not PHONE.match(phone):
        return f"phone {phone!r} is not valid"
    return ""


def contact_of(session: Session, key: str) -> Contact | None:
    return session.get(Contact, key)


def opt_out(session: Session, key: str, actor: str, note: str | None = None) -> None:
    check_key(key)
    if session.get(OptOut, key) is None:
        session.add(OptOut(key=key, at=utcnow(), by=actor, note=note))
    # Items not yet sent to this household are dropped now, not at send time only.
    session.execute(update(Item).where(Item.target_key == key, Item.status.in_(("pending", "approved")))
                    .values(status="skipped", send_detail="opposition du foyer"))
    audit(session, actor, "reminders.household.opt_out", key, note)


def cancel_opt_out(session: Session, key: str, actor: str) -> bool:
    removed = session.execute(delete(OptOut).where(OptOut.key == check_key(key))).rowcount
    audit(session, actor, "reminders.household.opt_in", key)
    return bool(removed)


def erase_household(session: Session, key: str, actor: str, keep_opt_out: bool = True) -> dict[str, int]:
    """Delete the household's personal data; anonymise its items. Returns what was done."""
    check_key(key)
    contacts = session.execute(delete(Contact).where(Contact.key == key)).rowcount or 0
    items = list(session.scalars(select(Item).where(Item.target_key == key)))
    for item in items:
        item.target_key = f"erased:{item.id}"
        item.address_id = item.bin_id = None
        item.event_ids = []
        if item.status in ("pending", "approved"):
            item.status, item.send_detail = "skipped", "données effacées à la demande du foyer"
    if keep_opt_out:
        opt_out(session, key, actor, "effacement des données")
    else:
        session.execute(delete(OptOut).where(OptOut.key == key))
    audit(session, actor, "reminders.household.erase", key, f"contacts={contacts} items={len(items)}")
    return {"contacts": contacts, "items": len(items), "opted_out": int(keep_opt_out)}


def list_contacts(session: Session, actor: str) -> list[dict[str, str | None]]:
    """Every contact (personal data): the read itself is audited."""
    audit(session, actor, "reminders.contacts.read")
    return [{c: getattr(contact, c) for c in CONTACT_COLUMNS}
            for contact in session.scalars(select(Contact).order_by(Contact.key))]
