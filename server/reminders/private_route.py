"""Reminders' answers are never stored by a browser or a proxy (``Cache-Control: no-store``).

Every ``/api/reminders`` answer names households or could: letters and the mail room's print file,
previews, route sheets, campaigns with addresses, contacts, the right-of-access export. A letter
served as a file came with ``Last-Modified`` and an ``ETag`` and nothing else, which lets a browser
keep it in its disk cache: on a shared office computer, or behind a caching proxy, households'
letters stayed readable after the session ended. The rule itself is ``server.web.private``'s, the
same for the dashboard's pages and the photos.
"""

from __future__ import annotations

from server.reminders.wording import TranslatedRoute
from server.web.private import NoStoreRoute


class PrivateRoute(NoStoreRoute, TranslatedRoute):
    """A reminders route: translated (``TranslatedRoute``), and its answer, translated or not, says
    ``no-store`` (``NoStoreRoute``, outermost in this order)."""
