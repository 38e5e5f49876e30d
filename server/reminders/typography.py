"""French typography for what a household reads: no-break spaces where a line must not break.

French puts a space before « : ; ! ? % » and inside « guillemets »; a plain space there lets the
line break before the sign, and a letter printed a lonely ":" or "?" at the start of a line
(or « at the end of one). Following the *Lexique des règles typographiques en usage à
l'Imprimerie nationale*: a no-break space (U+00A0) before « : » and « % » and inside the
guillemets, a narrow no-break space (U+202F) before « ; ! ? ». Only a space that is already
there is changed (``https://…``, ``R12-3`` or a time ``14:30`` stay as they are), so the
collectivité's own templates get the same care without writing the characters themselves.
"""

from __future__ import annotations

import re

NBSP, NNBSP = "\u00a0", "\u202f"
_BEFORE_WIDE = re.compile(r"[ \u00a0\u202f]+([:%»])")
_BEFORE_NARROW = re.compile(r"[ \u00a0\u202f]+([;!?])")
_AFTER_OPEN = re.compile(r"«[ \u00a0\u202f]*")


def french_spacing(text: str) -> str:
    """``text`` with no-break spaces before « : ; ! ? % » and inside « »."""
    text = _BEFORE_WIDE.sub(lambda m: NBSP + m[1], text)
    text = _BEFORE_NARROW.sub(lambda m: NNBSP + m[1], text)
    return _AFTER_OPEN.sub("«" + NBSP, text)
