"""The reminders' review page (``/rappels``) in the dashboard's frame, French first.

The page is a shell over ``/api/reminders/...`` like every dashboard page; it extends the
dashboard's base template and adds its own messages (``templates/reminders/i18n``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.config import ServerSettings
from server.streets.models import Street
from server.web.bounds import MAX_ROW_ID
from server.web.dashboard import LANGUAGES, NAV, MaybePrincipal, Pages, login_redirect, menu_for, request_lang
from server.web.deps import SessionDep
from server.web.private import NoStoreRoute
from vision.rules import SortingRules

I18N = Path(__file__).resolve().parent.parent / "templates" / "reminders" / "i18n"
NAV_ITEM = ("nav.reminders", "/rappels", "reminders")


@cache
def reminder_messages(lang: str) -> dict[str, str]:
    return json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))


def reminders_page_router(settings: ServerSettings, sorting_rules: SortingRules) -> APIRouter:
    pages = Pages(settings, sorting_rules)
    router = APIRouter(include_in_schema=False, route_class=NoStoreRoute)  # households: server.web.private

    @router.get("/rappels")
    def reminders_page(request: Request, who: MaybePrincipal, db: SessionDep, street_id: int | None = None) -> Response:
        if who is None:
            return login_redirect(request)
        # The street page's campaign names its street (« Seulement la rue n° 83 » told a manager
        # nothing); the name comes from OpenStreetMap, so the script sets it as text, never as HTML.
        street = db.get(Street, street_id) if street_id is not None and 0 < street_id <= MAX_ROW_ID else None
        named = {"name": street.name, "commune": street.commune} if street is not None else None
        lang = request_lang(request)
        t = {**pages.messages(lang), **reminder_messages(lang)}
        context = {
            "page": "reminders",
            "lang": lang,
            "other_lang": next(x for x in LANGUAGES if x != lang),
            "t": t,
            "nav": menu_for(who, (*NAV, NAV_ITEM)),
            "can_review": who.can("manager"),
            "household_level": settings.household_level,
            "config": {**pages.script_config(lang, {"streetId": street_id, "street": named}), "t": t},
        }
        return pages.templates.TemplateResponse(request, "reminders/review.html", context)

    return router
