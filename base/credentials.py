"""Passwords never printed: a URL's ``user:password@`` reaches error lines, logs and support tickets
masked, ``mqtt://trivue:***@broker:8883``."""

from __future__ import annotations

import re

# ``://`` then a user (maybe empty), ``:``, and everything up to the last ``@`` before the host: a
# password may hold an ``@`` of its own. Stops at a space, a quote or a slash, so that only the
# URL's own credentials are masked in a longer message ("got 'mqtt://u:p@ss@host:1883'").
_CREDENTIALS = re.compile(r"(://[^:/@\s'\"]*:)[^\s/'\"]*@")


def mask_credentials(text: str) -> str:
    """``text`` with every URL's password replaced by ``***``; works on URLs that do not even parse."""
    return _CREDENTIALS.sub(r"\1***@", text)
