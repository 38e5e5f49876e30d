"""The words a truck sends back (heartbeat ``config_refused``) for a config it cannot even read.

They name the config's version, the field and the value received, then pydantic's reason: an
operator reading "stream: Input should be 'recyclables', 'glass'..." on the *Camions* page did not
see which value the truck had been sent (a newer server's stream, a threshold out of this
version's bounds).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

REASON_MAX = 400  # the heartbeat's ``config_refused`` is at most this long
VALUE_MAX = 60  # a value is quoted up to this many characters


def unreadable_config(payload: bytes, error: ValidationError) -> str:
    """``"<version>: <field>: <value>: <reason>"`` for the first error of ``payload``."""
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "config"
    # A missing field has no value to quote; a value of the wrong JSON shape is quoted as received.
    value = "" if first["type"] == "missing" else f"{_quoted(first.get('input'))}: "
    return f"{config_version_of(payload)}: {field}: {value}{first['msg']}"[:REASON_MAX]


def config_version_of(payload: bytes) -> str:
    """The config_version of a config that did not validate, when it has a readable one; else ``?``."""
    try:
        version = json.loads(payload).get("config_version")
    except (ValueError, AttributeError, RecursionError):
        return "?"
    return version[:64] if isinstance(version, str) and version else "?"


def _quoted(value: object) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 3] + "..."
