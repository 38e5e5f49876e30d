"""The dashboard on the app: its pages, static files, API routes, accessibility declaration, basemap
and content security policy, mounted by ``server.app.create_app``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from server.config import ServerSettings
from server.web.accessibility import accessibility_router
from server.web.basemap import PagePolicy, basemap_router, content_security_policy
from server.web.commune_scope import OutOfScope
from server.web.dashboard import STATIC_DIR, Pages, missing_vendor_files, page_router
from server.web.dashboard_api import dashboard_api_router
from vision.rules import SortingRules

log = logging.getLogger(__name__)


def mount_dashboard(app: FastAPI, settings: ServerSettings, sorting_rules: SortingRules) -> None:
    """Add the dashboard pages, their static files and the dashboard's API routes to ``app``; the
    category filter lists the categories of ``sorting_rules`` (the settings' rules file)."""
    missing = missing_vendor_files()
    if missing:
        # The API keeps working; the pages would load without their map and charts.
        log.error("dashboard libraries missing (%s): run `make dashboard-assets`", ", ".join(missing))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(dashboard_api_router(settings))
    pages = Pages(settings, sorting_rules)
    app.include_router(page_router(pages))
    app.include_router(accessibility_router(pages))
    app.include_router(basemap_router(pages.basemap))
    app.include_router(api_docs_router(app.openapi_url or "/openapi.json"))
    app.add_middleware(PagePolicy, policy=content_security_policy(pages.basemap))
    app.add_exception_handler(OutOfScope, out_of_scope_answer(pages))  # type: ignore[arg-type]


def out_of_scope_answer(pages: Pages) -> Callable[[Request, OutOfScope], Response]:
    """A commune-scoped account refused a route (``server.web.commune_scope``): the API's JSON 403, or
    for a page asked by a browser a 403 page in its language, with the menu of what it may open."""

    def answer(request: Request, refusal: OutOfScope) -> Response:
        path = request.url.path
        if path.startswith("/api/") or path == "/metrics" or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)
        page = pages.render(request, "scope", "out_of_scope.html", refusal.who,
                            communes=", ".join(refusal.who.communes or ()))
        page.status_code = refusal.status_code
        page.headers["Cache-Control"] = "no-store"  # as every page (server.web.private)
        return page

    return answer


SWAGGER = "/static/vendor/swagger-ui"


def api_docs_router(openapi_url: str) -> APIRouter:
    """``GET /docs``: Swagger UI from this server's own files (``make dashboard-assets``).

    FastAPI's default page loads it from cdn.jsdelivr.net (a floating ``@5``, no integrity check)
    on the dashboard's origin, where a CDN serving other code could act with an admin's session;
    offline it was blank. ``create_app`` turns that page and ReDoc's (same CDN) off. Swagger UI
    would also ask validator.swagger.io to check the document: ``validatorUrl`` null.
    """
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title="Trivue API",
                                   swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER}/swagger-ui.css",
                                   swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    return router
