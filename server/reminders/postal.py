"""Postal addresses as La Poste reads them through a window envelope (norme NF Z10-011).

At most 6 lines of at most 38 characters, no blank line; the last line is the postcode, a
space and the commune in capitals, without punctuation or accents (``45000 ORLEANS``). The
greeting uses the household's name when the contacts hold one.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata

MAX_LINES, MAX_CHARS = 6, 38
POSTCODE_LINE = re.compile(r"^(?P<start>.*?)[,\s]*\b(?P<code>\d{5})\s+(?P<commune>[^,\d][^,]*?)\s*$")


class AddressError(ValueError):
    """An address La Poste cannot deliver as written (no postcode and commune)."""


def last_line(code: str, commune: str) -> str:
    """``45000 ORLEANS``: capitals, no accents, hyphens and apostrophes as spaces, no punctuation."""
    plain = unicodedata.normalize("NFKD", commune).encode("ascii", "ignore").decode()
    plain = re.sub(r"[-'’]", " ", plain)
    plain = re.sub(r"[^A-Za-z0-9 ]", "", plain)
    return f"{code} {' '.join(plain.upper().split())}"


def address_block(name: str, address: str) -> list[str]:
    """The lines to print in the envelope's window; ``address`` is free text ending with
    ``<postcode> <commune>`` (commas or line breaks between its parts)."""
    flat = " ".join(address.replace("\n", ", ").split())
    found = POSTCODE_LINE.match(flat)
    if not found:
        raise AddressError(f"adresse {address!r} : il manque le code postal et la commune")
    parts = [p.strip(" ,.") for p in found["start"].split(",") if p.strip(" ,.")]
    lines = [line for part in [name, *parts] for line in textwrap.wrap(part, MAX_CHARS)]
    room = MAX_LINES - 1
    if len(lines) > room:  # keep the name and the street (the last lines before the postcode)
        lines = [lines[0], *lines[-(room - 1):]]
    return [*lines, last_line(found["code"], found["commune"])[:MAX_CHARS]]


def greeting(name: str | None) -> str:
    """``Madame Martin,`` from ``Mme Martin``; ``Madame, Monsieur,`` when no name is known."""
    if not name or not name.strip() or name.strip().lower().startswith("aux occupants"):
        return "Madame, Monsieur,"
    name = " ".join(name.split())
    for short, long in (("Mme ", "Madame "), ("Madame ", "Madame "), ("M. ", "Monsieur "), ("Monsieur ", "Monsieur ")):
        if name.startswith(short):
            return f"{long}{name[len(short):]},"
    return f"Bonjour {name},"
