"""Reminders' answers are never stored by a browser or a proxy (``Cache-Control: no-store``).

Every ``/api/reminders`` answer names households or could: letters and the mail room's print file,
previews, route sheets, campaigns with addresses, contacts, the right-of-access export. A letter
served as a file came with ``Last-Modified`` and an ``ETag`` and nothing else, which lets a browser
keep it in its disk cache: on a shared office computer, or behind a caching proxy, households'
letters stayed readable after the session ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Response

from server.reminders.wording import TranslatedRoute

NO_STORE = "no-store"


class PrivateRoute(TranslatedRoute):
    """A reminders route (translated, ``TranslatedRoute``) whose answer says ``no-store``."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response: Response = await handler(request)
            response.headers["Cache-Control"] = NO_STORE
            return response

        return route
