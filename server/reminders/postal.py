"""Postal addresses as La Poste reads them through a window envelope (norme NF Z10-011).

At most 6 lines of at most 38 characters, no blank line, in the norm's order: addressee, then
complements (flat, building), then the number and street, then the postcode and commune. From
the street line down there is no punctuation (the sorting machines' OCR misreads commas, dots,
hyphens and apostrophes) and La Poste asks for capitals without accents there ("les 3 dernières
lignes toujours en majuscules", La Poste, service national de l'adresse, *Les 6 règles d'or de la
norme*): ``12 RUE DE L EGLISE`` / ``45000 ORLEANS``. The number and the street stay on one line
(``12, rue…`` written with a comma is one line, not two); a street line over 38 characters takes
La Poste's standard abbreviations (``AVENUE`` → ``AV``, ``SAINT`` → ``ST``…) before it is cut at a
word, never wrapped: the line just above the postcode is read as the street. The greeting is the
title alone (« Madame, »), as French letters and e-mails greet.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from typing import NamedTuple

MAX_LINES, MAX_CHARS = 6, 38
POSTCODE_LINE = re.compile(r"^(?P<start>.*?)[,\s]*\b(?P<code>\d{5})\s+(?P<commune>[^,\d][^,]*?)\s*$")
# "12", "12 bis", "3B": a number written before a comma belongs on the street's line.
HOUSE_NUMBER = re.compile(r"^\d{1,4}\s*(bis|ter|quater|quinquies|[a-z])?$", re.IGNORECASE)
# La Poste's abbreviations of street types and titles (used only when a line is too long).
ABBREVIATIONS = {
    "ALLEE": "ALL", "AVENUE": "AV", "BOULEVARD": "BD", "CARREFOUR": "CAR", "CHEMIN": "CHE", "CHAUSSEE": "CHS",
    "COURS": "CRS", "DOMAINE": "DOM", "ESPLANADE": "ESP", "FAUBOURG": "FG", "HAMEAU": "HAM", "IMPASSE": "IMP",
    "LOTISSEMENT": "LOT", "MONTEE": "MTE", "PASSAGE": "PAS", "PLACE": "PL", "PROMENADE": "PROM",
    "QUARTIER": "QUA", "RESIDENCE": "RES", "ROUTE": "RTE", "RUELLE": "RLE", "SQUARE": "SQ", "TRAVERSE": "TRA",
    "SAINT": "ST", "SAINTE": "STE", "GENERAL": "GAL", "MARECHAL": "MAL", "PRESIDENT": "PDT", "DOCTEUR": "DR",
    "PROFESSEUR": "PR", "COMMANDANT": "CDT", "CAPITAINE": "CNE", "LIEUTENANT": "LT", "COLONEL": "COL",
}


# The number's complement, in the order the houses stand: 12, 12 bis, 12 ter, then 12 A, 12 B.
SUFFIX_RANK = {"": 0, "BIS": 1, "TER": 2, "QUATER": 3, "QUINQUIES": 4}
STREET_NUMBER = re.compile(r"^(?P<number>\d{1,5})(?:\s*(?P<suffix>BIS|TER|QUATER|QUINQUIES|[A-Z])\b)?"
                           r"\s*(?P<street>.*)$")


class SortingKey(NamedTuple):
    """Where a letter goes, in the mail room's order: commune, postcode, street, number."""

    commune: str
    postcode: str
    street: str
    number: int
    rank: int
    suffix: str


class AddressError(ValueError):
    """An address La Poste cannot deliver as written (no postcode and commune)."""


def _words(text: str) -> list[str]:
    """Capitals, no accents, hyphens and apostrophes as spaces, no other punctuation."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    plain = re.sub(r"[-'’.,;/]", " ", plain)
    return re.sub(r"[^A-Za-z0-9 ]", "", plain).upper().split()


def machine_line(text: str) -> str:
    """Capitals, no accents, hyphens and apostrophes as spaces, no other punctuation, <= 38 characters."""
    words = _words(text)
    if len(" ".join(words)) > MAX_CHARS:
        words = [ABBREVIATIONS.get(word, word) for word in words]
    line = " ".join(words)
    return line if len(line) <= MAX_CHARS else line[:MAX_CHARS + 1].rsplit(" ", 1)[0]


def last_line(code: str, commune: str) -> str:
    """``45000 ORLEANS``: capitals, no accents, hyphens and apostrophes as spaces, no punctuation."""
    return machine_line(f"{code} {commune}")


def _parts(start: str) -> list[str]:
    parts = [p.strip(" ,.") for p in start.split(",") if p.strip(" ,.")]
    merged: list[str] = []
    for part in parts:
        if merged and HOUSE_NUMBER.match(merged[-1]):
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return merged


def address_block(name: str, address: str) -> list[str]:
    """The lines to print in the envelope's window; ``address`` is free text ending with
    ``<postcode> <commune>`` (commas or line breaks between its parts)."""
    flat = " ".join(address.replace("\n", ", ").split())
    found = POSTCODE_LINE.match(flat)
    if not found:
        raise AddressError(f"adresse {address!r} : il manque le code postal et la commune")
    parts = _parts(found["start"])
    street = [machine_line(parts.pop())] if parts else []
    lines = [line for part in [name, *parts] for line in textwrap.wrap(part, MAX_CHARS)]
    room = MAX_LINES - 1 - len(street)
    if len(lines) > room:  # keep the name (line 1); complements closest to the street come next
        lines = [lines[0], *lines[len(lines) - room + 1:]]
    return [*lines, *street, last_line(found["code"], found["commune"])]


def greeting(name: str | None) -> str:
    """``Madame,`` from ``Mme Léa Martin``, ``Monsieur,`` from ``M. Durand``; ``Madame, Monsieur,``
    otherwise. French letters and e-mails greet by the title alone, never with the name (it said
    « Madame Léa Martin, »); a name without a single title (``Léa Martin``, ``Mme et M. Martin``)
    tells nothing sure of whom it greets."""
    words = " ".join((name or "").split()).replace(",", " ").split()
    titles = {"mme": "Madame", "madame": "Madame", "m.": "Monsieur", "monsieur": "Monsieur"}
    found = {titles[w.lower()] for w in words if w.lower() in titles}
    if len(found) == 1 and words[0].lower() in titles and not ({"et", "&"} & {w.lower() for w in words}):
        return f"{found.pop()},"
    return "Madame, Monsieur,"


def sorting_key(address: str) -> SortingKey:
    """The mail room's order for ``address`` (free text ending with ``<postcode> <commune>``): names
    in capitals without accents nor abbreviations (``Saint-Jean-de-Braye`` and ``ST JEAN DE BRAYE``
    would part one commune's letters), numbers as numbers (9 before 10), bis after the number."""
    flat = " ".join(address.replace("\n", ", ").split())
    found = POSTCODE_LINE.match(flat)
    if not found:
        raise AddressError(f"adresse {address!r} : il manque le code postal et la commune")
    parts = _parts(found["start"])
    line = " ".join(_words(parts[-1])) if parts else ""
    numbered = STREET_NUMBER.match(line)
    number, suffix = (int(numbered["number"]), numbered["suffix"] or "") if numbered else (0, "")
    street = numbered["street"] if numbered else line
    rank = SUFFIX_RANK.get(suffix, 10 + ord(suffix[:1] or "A"))
    return SortingKey(" ".join(_words(found["commune"])), found["code"], street, number, rank, suffix)
