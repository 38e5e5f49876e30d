"""``/accessibilite``: the déclaration d'accessibilité (RGAA 4.1) that French public bodies publish.

Open without login (anyone must be able to read it and reach its contact), linked from the footer of
every page with the conformity state, as the RGAA asks. What only the collectivité knows (who it is,
its audit, its contact) comes from the settings; the state stays "non conforme" until an audit is
recorded, which is the RGAA's own rule.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from server.web.commune_scope import open_to_communes
from server.web.dashboard import AnyPrincipal, Pages
from server.web.private import NoStoreRoute

PATH = "/accessibilite"
AXE_VERSION = "4.14.1"  # what tests/dashboard/test_accessibility.py runs; cited by the declaration


def accessibility_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False, route_class=NoStoreRoute)  # as every page (server.web.private)

    @router.get(PATH)
    @open_to_communes  # public: it shows no data
    def declaration(request: Request, who: AnyPrincipal) -> HTMLResponse:
        settings = pages.settings
        if who is not None and not who.can("viewer"):  # a truck's token reads it as anyone does
            who = None
        return pages.render(request, "accessibility", "accessibility.html", who, public=who is None,
                            entity=settings.accessibility_entity, status=settings.accessibility_status,
                            audit=settings.accessibility_audit, contact=settings.accessibility_contact,
                            axe_version=AXE_VERSION)

    return router
