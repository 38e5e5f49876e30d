"""SMS wire rules: numbers in E.164 and texts that fit one segment.

A segment holds 160 characters of the GSM 03.38 alphabet, or only 70 once one character falls
outside it (the whole message switches to UCS-2). French letters such as é, è, à, ù are in the
GSM alphabet; ê, â, î, ô, û, ç, œ and typographic quotes are not, so they are written with their
nearest GSM letter: a resident reads "fenetre" without trouble, and pays for one SMS, not three.
"""

from __future__ import annotations

import re
import unicodedata

# GSM 03.38 basic set (the characters that cost one septet each).
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = frozenset("^{}\\[~]|€")  # two septets each (escape + character)
SINGLE_SEGMENT_GSM, SINGLE_SEGMENT_UCS2 = 160, 70
_NEAREST = str.maketrans({
    "ê": "e", "ë": "e", "â": "a", "î": "i", "ï": "i", "ô": "o", "û": "u", "ü": "u", "ç": "c", "ÿ": "y",
    "À": "A", "Â": "A", "È": "E", "Ê": "E", "Ë": "E", "Î": "I", "Ï": "I", "Ô": "O", "Ù": "U", "Û": "U",
    "’": "'", "‘": "'", "«": '"', "»": '"', "“": '"', "”": '"', "—": "-", "–": "-", "…": "...",
    "\u00a0": " ", "\u202f": " ", "œ": "oe", "Œ": "OE",
})
_DIGITS = re.compile(r"\d+")


class PhoneError(ValueError):
    """A number that cannot be written in E.164; the message quotes it."""


# The overseas départements share France's ten-digit plan (0 + 9 digits, ARCEP) but are reached from a
# mobile network through their own country codes, never +33: « 0690 12 34 56 » (Guadeloupe) is
# +590 690 12 34 56, and +33 690… reaches nobody. National prefix (after the 0) -> (country code,
# mobile). Only the prefixes we are sure of: Guadeloupe, Saint-Martin and Saint-Barthélemy 0590 /
# 0690, 0691; Guyane 0594 / 0694; Martinique 0596 / 0696, 0697; La Réunion 0262 / 0692, 0693;
# Mayotte 0269 / 0639 (Réunion and Mayotte share +262).
OVERSEAS = {
    "590": ("590", False), "690": ("590", True), "691": ("590", True),
    "594": ("594", False), "694": ("594", True),
    "596": ("596", False), "696": ("596", True), "697": ("596", True),
    "262": ("262", False), "692": ("262", True), "693": ("262", True),
    "269": ("262", False), "639": ("262", True),
}
# Country codes whose numbers are written in that plan: a national 0… number under any of them is
# French, metropolitan (+33) or overseas by its prefix; each has 9 digits after the code.
FRENCH_PLAN = ("33", "262", "590", "594", "596")


def _french(national: str) -> str:
    """The international digits of a French plan number given without its 0 (9 digits)."""
    code = OVERSEAS.get(national[:3], ("33", False))[0]
    return code + national


def _plan_code(number: str) -> str | None:
    """The French plan country code ``number`` (digits, no +) starts with, or None."""
    return next((code for code in FRENCH_PLAN if number.startswith(code)), None)


def e164(raw: str, country_code: str = "33") -> str:
    """``06 98 76 54 32``, ``0033 6 98…`` or ``+33 (0)6 98…`` -> ``+33698765432``; an overseas number
    gets its own code (``0690 12 34 56`` and the mistaken ``+33 6 90 12 34 56`` -> ``+590690123456``)."""
    text = raw.strip().replace("(0)", "")
    digits = "".join(_DIGITS.findall(text))
    if text.startswith("+"):
        number = digits
    elif digits.startswith("00"):
        number = digits[2:]
    elif digits.startswith("0"):  # national form: the trunk 0 gives way to the country code
        number = country_code + digits[1:]
    else:
        raise PhoneError(f"numéro {raw!r} : ni national (0…) ni international (+…)")
    code = _plan_code(number)
    if code is not None:
        if len(number) != len(code) + 9:
            raise PhoneError(f"numéro {raw!r} : un numéro français a 10 chiffres")
        number = _french(number[len(code):])  # +33 690… (or a Réunion server's 06 12…) to its real code
    if not 8 <= len(number) <= 15:
        raise PhoneError(f"numéro {raw!r} : longueur impossible pour un numéro E.164")
    return f"+{number}"


def mobile(raw: str, country_code: str = "33") -> bool:
    """True for a number an SMS can reach: a French one must be a mobile (+336, +337, and overseas
    +590 690/691, +594 694, +596 696/697, +262 692/693/639); a landline (01-05, 09, 0590, 0262…) or
    a special number (08) would take the SMS, charge it, and nobody would read it. Other countries'
    numbers are taken as they are (E.164 length only)."""
    try:
        number = e164(raw, country_code)[1:]
    except PhoneError:
        return False
    code = _plan_code(number)
    if code is None:
        return True
    national = number[len(code):]
    if code == "33":
        return national[0] in "67"
    return OVERSEAS.get(national[:3], ("", False)) == (code, True)


def _nearest(char: str) -> str:
    """A GSM letter for ``char``: the table above, else the letter without its accent (ú -> u), else itself."""
    mapped = char.translate(_NEAREST)
    if mapped != char or char in GSM7 or char in GSM7_EXTENDED:
        return mapped
    base = unicodedata.normalize("NFKD", char)[:1]
    return base if base in GSM7 else char


def gsm_text(text: str) -> str:
    """``text`` in the GSM alphabet where a near letter exists (one line, single spaces): one character
    outside it (a resident's ú, a street's ã) made the whole SMS UCS-2, 70 characters a segment."""
    return " ".join("".join(map(_nearest, text)).split())


def is_gsm7(text: str) -> bool:
    return all(c in GSM7 or c in GSM7_EXTENDED for c in text)


def segments(text: str) -> int:
    """How many SMS the text costs (concatenated parts carry 153 GSM or 67 UCS-2 characters)."""
    if is_gsm7(text):
        length = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        return 1 if length <= SINGLE_SEGMENT_GSM else -(-length // 153)
    length = len(text.encode("utf-16-le")) // 2
    return 1 if length <= SINGLE_SEGMENT_UCS2 else -(-length // 67)
