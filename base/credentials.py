"""Passwords never printed: a URL's ``user:password@`` reaches error lines, logs and support tickets
masked, ``mqtt://trivue:***@broker:8883``."""

from __future__ import annotations

import re

# ``://`` then a user (maybe empty, maybe holding an ``@``: hosted PostgreSQL's ``trivue@server``),
# ``:``, and everything up to the last ``@``: a password may hold an ``@``, a ``/`` or a quote of its
# own (masking a path's ``@`` too is harmless). In a message, the match stops at a space or a quote,
# so that only the URL's own credentials go; a value is masked whole before it is quoted into one
# (``base.strict_yaml.describe``).
_IN_TEXT = re.compile(r"(://[^:/\s'\"]*:)[^\s'\"]*@")
_IN_URL = re.compile(r"(://[^:/\s]*:)\S*@")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; works on a URL that does not even parse."""
    return _IN_URL.sub(r"\1***@", url)


def mask_credentials(text: str) -> str:
    """``text`` (a message) with the password of every URL in it replaced by ``***``."""
    return _IN_TEXT.sub(r"\1***@", text)
