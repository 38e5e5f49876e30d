"""The dashboard on the app: its pages, static files, API routes, accessibility declaration, basemap
and content security policy, mounted by ``server.app.create_app``."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from server.config import ServerSettings
from server.web.accessibility import accessibility_router
from server.web.basemap import PagePolicy, basemap_router, content_security_policy
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
    app.add_middleware(PagePolicy, policy=content_security_policy(pages.basemap))
