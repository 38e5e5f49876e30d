"""Reading a contacts file as French offices produce it.

- separators: semicolon (French Excel's default), comma or tab, from the header line;
- encodings: UTF-8 with or without BOM, else what ``charset-normalizer`` finds among the
  encodings of office files (Windows-1252 from Excel "CSV (séparateur : point-virgule)", ISO
  8859-15, UTF-16 from "Texte Unicode");
- one household per line: every line is parsed on its own, so an unclosed quote is reported
  with its line number instead of swallowing the next household;
- column names in English or French (``key``/``clé``, ``name``/``nom``, ``email``/``courriel``,
  ``phone``/``téléphone``, ``postal_address``/``adresse``); unknown columns are listed, not guessed.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field

from server.reminders.phrases import plural

COLUMNS = ("key", "name", "email", "phone", "postal_address")
ALIASES = {"cle": "key", "cle du foyer": "key", "foyer": "key", "nom": "name", "courriel": "email",
           "e-mail": "email", "mail": "email", "adresse electronique": "email", "telephone": "phone",
           "tel": "phone", "portable": "phone", "adresse": "postal_address", "adresse postale": "postal_address"}
OFFICE_ENCODINGS = ["cp1252", "iso8859_15", "utf_16", "mac_roman"]
# The encodings as a manager knows them (Excel's "CSV (séparateur : point-virgule)" is Windows-1252):
# the import's answer says which one the file was read with.
ENCODING_NAMES = {"cp1252": "Windows-1252", "iso8859_15": "ISO 8859-15", "utf_16": "UTF-16", "utf-16": "UTF-16",
                  "mac_roman": "Mac Roman", "utf-8": "UTF-8", "utf_8": "UTF-8"}


class ContactFileError(ValueError):
    """A file that cannot be read at all (encoding, header); rows have their own errors."""


@dataclass
class ContactFile:
    encoding: str
    delimiter: str
    columns: list[str]  # known columns, in the file's order
    unknown: list[str]  # header names that are none of COLUMNS
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line number, values)
    errors: list[str] = field(default_factory=list)  # "ligne N : ..."


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "strict"), "UTF-8 (BOM)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=OFFICE_ENCODINGS).best()
    if best is None:
        raise ContactFileError("encodage du fichier non reconnu : enregistrez-le en CSV UTF-8")
    return str(best), ENCODING_NAMES.get(best.encoding, best.encoding)


def column_name(header: str) -> str | None:
    """The column a header names (``Clé``, ``Téléphone``, ``postal_address``...), None when unknown."""
    plain = unicodedata.normalize("NFKD", header.strip().lower()).encode("ascii", "ignore").decode()
    plain = " ".join(plain.replace("_", " ").split())
    if plain.replace(" ", "_") in COLUMNS:
        return plain.replace(" ", "_")
    return ALIASES.get(plain)


def read_contact_file(data: bytes | str) -> ContactFile:
    text, encoding = (data.removeprefix("\ufeff"), "texte") if isinstance(data, str) else decode(data)
    lines = text.splitlines()
    header_at = next((n for n, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ContactFileError("fichier vide : la première ligne doit nommer les colonnes (key;name;email;phone;"
                               "postal_address)")
    first = lines[header_at]
    delimiter = max(";,\t", key=first.count)
    header = next(csv.reader([first], delimiter=delimiter))
    names = [column_name(h) for h in header]
    if "key" not in names:
        raise ContactFileError(f"colonne « key » (clé du foyer) absente de l'en-tête {first!r} ; colonnes "
                               f"attendues : {', '.join(COLUMNS)}")
    unknown = [h.strip() for h, n in zip(header, names, strict=True) if n is None and h.strip()]
    result = ContactFile(encoding, delimiter, [n for n in names if n], unknown)
    for number, line in enumerate(lines[header_at + 1:], start=header_at + 2):
        if not line.strip():
            continue
        try:
            values = next(csv.reader([line], delimiter=delimiter, strict=True))
        except csv.Error:
            result.errors.append(f"ligne {number} : guillemet non fermé ou mal placé")
            continue
        if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
            columns = len(header)
            result.errors.append(f"ligne {number} : {len(values)} champs pour {columns} "
                                 f"{plural(columns, 'colonne', 'colonnes')} "
                                 f"(séparateur « {delimiter} » dans une valeur non entre guillemets ?)")
            continue
        row = {n: (values[i].strip() if i < len(values) else "") for i, n in enumerate(names) if n}
        result.rows.append((number, row))
    return result
