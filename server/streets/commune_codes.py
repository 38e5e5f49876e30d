"""A commune named by a person, found by its code INSEE: what ``--communes Saran`` stores.

Commune-scoped accounts and tokens are stored by codes INSEE (``server.web.commune_scope``), but a
métropole's admin knows the communes by name. A name is looked up in what the imports left: the
streets' and addresses' commune and code INSEE (``server.streets.insee``), compared as address
linking compares communes (``commune_key``: case, accents, hyphens, the typographic apostrophe,
« St- » / « Ste- » for « Saint- » / « Sainte- »).
A name is never guessed into a code: one that matches no commune, a commune whose code nothing
said, or two codes (Saint-Denis in Seine-Saint-Denis and in La Réunion) is refused, naming why.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.streets.models import Address, Street
from server.streets.names import commune_key

NAMED = 30  # communes named in a refusal; a national deployment has thousands
CLOSEST = 3


class CommuneNameError(ValueError):
    """A commune's name that gives no one code INSEE: unknown, ambiguous, or without a code."""


def is_code(typed: str) -> bool:
    """A code, good or mistyped (``4523``), rather than a name: no French commune's name has a
    digit, so a typo in a code is said to be one (``check_communes``) instead of an unknown name."""
    return any(character.isdigit() for character in typed)


def _held(session: Session) -> dict[str, dict[str | None, list[str]]]:
    """The communes the imports left, by ``commune_key``: each code INSEE (None: nothing said it)
    with the names it is spelt with, the streets' spelling first (the one the dashboard shows)."""
    held: dict[str, dict[str | None, list[str]]] = {}
    for table in (Street, Address):
        query = select(table.commune, table.code_insee).distinct().order_by(table.commune)
        for name, code in session.execute(query):
            spellings = held.setdefault(commune_key(name), {}).setdefault(code, [])
            if name not in spellings:
                spellings.append(name)
    return held


def _spelling(codes: dict[str | None, list[str]]) -> str:
    return next(iter(codes.values()))[0]


def _unknown(typed: str, held: dict[str, dict[str | None, list[str]]]) -> CommuneNameError:
    if not held:
        return CommuneNameError(f"commune {typed!r}: no streets are imported yet, so no commune is known by its "
                                "name: import them (`trivue streets import`) or give its code INSEE (Orléans is 45234)")
    close = difflib.get_close_matches(commune_key(typed), list(held), n=CLOSEST, cutoff=0.6)
    if close:
        return CommuneNameError(f"no commune named {typed!r} has streets or addresses here; did you mean "
                                f"{' or '.join(_spelling(held[key]) for key in close)}?")
    names = sorted(_spelling(codes) for codes in held.values())
    listed = ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
    return CommuneNameError(f"no commune named {typed!r} has streets or addresses here; the communes imported: "
                            f"{listed}")


def code_of(typed: str, held: dict[str, dict[str | None, list[str]]]) -> str:
    """The code INSEE of the one commune ``typed`` names among ``held``."""
    codes = held.get(commune_key(typed))
    if codes is None:
        raise _unknown(typed, held)
    known = sorted(code for code in codes if code is not None)
    if len(known) > 1:
        both = ", ".join(f"{code} ({codes[code][0]})" for code in known)
        raise CommuneNameError(f"commune {typed!r} names several communes: {both}; give the code INSEE of the one "
                               "meant")
    if not known:
        raise CommuneNameError(
            f"commune {typed!r}: its streets carry no code INSEE (nothing said it at import), so its name cannot "
            "be turned into one: give its code INSEE, or import its BAN addresses (`trivue addresses import`) or "
            "its streets with `--commune NAME --insee CODE`")
    return known[0]


def codes_of(session: Session, typed: Iterable[str]) -> list[str]:
    """Each of ``typed`` as a code INSEE: a code as typed (``check_communes`` checks it), a name
    replaced by its commune's code. The streets and addresses are read only when a name is given."""
    entries = list(typed)
    if all(is_code(entry) for entry in entries):
        return entries
    held = _held(session)
    return [entry if is_code(entry) else code_of(entry, held) for entry in entries]


def names_of(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """The name the imports give each of ``codes``: the streets' spelling (the one the dashboard
    shows), else the addresses'; a code that no street or address carries is left out."""
    wanted = list(codes)
    named: dict[str, str] = {}
    for table in (Street, Address):
        missing = [code for code in wanted if code not in named]
        if not missing:
            break
        query = (select(table.commune, table.code_insee).where(table.code_insee.in_(missing)).distinct()
                 .order_by(table.commune))
        for name, code in session.execute(query):
            named.setdefault(code, name)
    return named
