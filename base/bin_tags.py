"""A bin's RFID tag in one canonical form, wherever it enters: the truck's reader, the wire, the
bin registry's file, a household key typed in a request.

The same chip is written several ways: a reader prints ``04a1b2c3``, ``04:A1:B2:C3`` or
``04 A1 B2 C3``, the collectivity's inventory ``04A1B2C3``. Compared as written, the lift did not
find its bin in the registry and lost its certain address. The canonical form:

- letters in upper case (``04a1b2c3`` -> ``04A1B2C3``);
- white space and colons removed wherever they are (``04:A1:B2:C3``, `` 04 A1 B2 C3 ``);
- hyphens or dots removed only when they separate byte pairs (``04-A1-B2-C3``, ``04.A1.B2.C3``):
  elsewhere they belong to the inventory's numbering (``BAC-0042``) and are kept, as are ``_``.

A tag is then valid when it matches ``base.ids.ID_PATTERN`` and is at most ``ID_MAX_LENGTH`` long
(the wire's ``bin_id``): a text with other characters stays invalid (non-ASCII letters are not
upper-cased, so ``ß`` never becomes a valid ``SS``).
"""

from __future__ import annotations

import re

# Byte pairs separated by one hyphen or one dot throughout, as a reader prints a chip's UID.
_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2})+|[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2})+")


def canonical_tag(text: str) -> str:
    """``text`` as a tag in the canonical form (above); not validated."""
    tag = "".join(text.split()).replace(":", "")
    if _PAIRS.fullmatch(tag):
        tag = tag.replace("-", "").replace(".", "")
    return tag.upper() if tag.isascii() else tag
