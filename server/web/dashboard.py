"""The waste managers' dashboard: server-rendered page shells (French first) over the public API.

Pages carry no data of their own: their scripts read the same ``/api/...`` routes as integrators,
with the session cookie of ``POST /api/login``. The few routes the pages need beyond the core API
(``/api/me``, live alerts, data quality, the street network) live in ``server.dashboard_api``.
Browser libraries (Leaflet, Chart.js) are installed from npm by ``make dashboard-assets`` into
``server/static/vendor``; nothing is fetched from the network at run time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from server.config import ServerSettings
from server.ingest.truck_state import SILENT_AFTER
from server.streets.models import Street
from server.web.auth import Principal
from server.web.basemap import Basemap, basemap_from
from server.web.bounds import FIRST_DAY, LAST_DAY, RowId
from server.web.commune_scope import OutOfScope, open_to_communes, street_in_scope
from server.web.deps import SessionDep, current_principal
from server.web.private import NoStoreRoute
from vision.rules import SortingRules

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent.parent  # server/: templates/ and static/ are shared by the packages
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
LANGUAGES = ("fr", "en")  # the first is the default
LANG_COOKIE = "trivue_lang"
VENDOR_FILES = ("vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.css", "vendor/chartjs/chart.umd.js",
                "vendor/pmtiles/pmtiles.js", "vendor/konva/konva.min.js", "vendor/swagger-ui/swagger-ui-bundle.js",
                "vendor/swagger-ui/swagger-ui.css")
NAV = (  # (message key, path, page name)
    ("nav.map", "/carte", "map"), ("nav.ranking", "/classement", "ranking"), ("nav.fleet", "/flotte", "fleet"),
    ("nav.alerts", "/alertes", "alerts"), ("nav.quality", "/qualite", "quality"),
    ("nav.annotation", "/annotation", "annotation"),  # labelling field photos (server.labels)
    ("nav.journal", "/journal", "journal"),  # the audit trail (GET /api/audit), admins only
)
REMINDERS_PATH = "/rappels"  # the reminders page (server/reminders_pages.py)
# Pages a role cannot use stay out of its menu: they would only answer "reserved for..." (403 behind).
# Alerts are lift by lift (near a household on a short street): managers (server.web.dashboard_api).
NAV_ROLES = {"annotation": "annotator", "alerts": "manager", "reminders": "manager", "journal": "admin"}
# The pages a mairie's account limited to its communes may use (server.web.commune_scope), and the
# street page: the others are refused to it (403) and left out of its menu.
SCOPED_PAGES = ("map", "ranking")
# An admin's back-office pages fold under one « Administration » disclosure button (base.html,
# app.js): its eight pages, the language link and who is signed in wrapped the top bar onto two
# lines below ~1,500 px. The other roles keep their pages flat, as they had them.
ADMIN_GROUP = ("fleet", "quality", "annotation", "journal")
NavItem = tuple[str, str, str]  # (message key, path, page name)
# The fleet page's « Silencieux »: fixed (docs/dashboard.md), the rule of trivue_trucks_silent and of liveness.
SILENT_AFTER_S = int(SILENT_AFTER.total_seconds())


@cache
def messages(lang: str) -> dict[str, str]:
    """UI messages of a language (``templates/i18n/<lang>.json``), shared by templates and scripts."""
    return json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def missing_vendor_files(static_dir: Path = STATIC_DIR) -> list[str]:
    return [name for name in VENDOR_FILES if not (static_dir / name).is_file()]


def request_lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else LANGUAGES[0]


def safe_next(target: str | None, default: str = "/carte") -> str:
    """A local path to go back to; anything else (``//evil.example``, ``https://...``) is refused."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def optional_principal(request: Request, db: SessionDep) -> Principal | None:
    """The caller when authenticated; pages redirect to the login page instead of answering 401."""
    try:
        return current_principal(request, db)
    except OutOfScope:  # signed in, on a page not open to its communes' account: no login page loop
        raise
    except HTTPException:
        return None


AnyPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def page_principal(who: AnyPrincipal) -> Principal | None:
    """``optional_principal`` for the dashboard's pages: a caller off the viewer < manager < admin
    ladder (a truck's token) is refused, as by every API route behind the pages, rather than given
    a page shell whose every call answers 403."""
    if who is not None and not who.can("viewer"):
        raise HTTPException(403, "the dashboard needs the viewer role or above: a truck's token reads "
                                 "only its models and its own config")
    return who


MaybePrincipal = Annotated[Principal | None, Depends(page_principal)]


@dataclass(slots=True)
class Pages:
    """Renders page shells with the language, the messages and the settings the scripts need.

    The error categories (the map's and the ranking's filter) are those of the server's sorting
    rules (``sorting_rules``, the trucks' file), in the order their classes come in it; the streams
    filter offers the file's streams (a collectivité without a paper round has no "Papiers").
    """

    settings: ServerSettings
    sorting_rules: SortingRules
    templates: Jinja2Templates = field(init=False)
    basemap: Basemap = field(init=False)
    _versions: dict[str, str] = field(default_factory=dict)
    _messages: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(directory=TEMPLATES_DIR)
        self.basemap = basemap_from(self.settings)
        self.templates.env.globals["static"] = self.static_url
        # Every page's footer states the RGAA conformity and links to the declaration (server.accessibility).
        self.templates.env.globals["accessibility_status"] = self.settings.accessibility_status

    def static_url(self, name: str) -> str:
        # The file's mtime in the URL: browsers may cache forever, a new build is a new URL.
        if name not in self._versions:
            path = STATIC_DIR / name
            self._versions[name] = str(int(path.stat().st_mtime)) if path.exists() else "0"
        return f"/static/{name}?v={self._versions[name]}"

    def messages(self, lang: str) -> dict[str, str]:
        """The language's messages, with a ``cat.<category>`` and a ``class.<class>`` for every category
        and class of the rules that the translation files lack (one a deployment added), in the rules'
        words: rather than an empty option in the filter or a bare code in the annotation tool and
        the street page."""
        if lang not in self._messages:
            rules, known = self.sorting_rules, messages(lang)
            added = {**{f"cat.{category}": rules.category_label(category) for category in rules.categories},
                     **{f"class.{name}": rules.label(name) for name in rules.spec.classes}}
            self._messages[lang] = {**added, **known}  # the translations win where they exist
        return self._messages[lang]

    def script_config(self, lang: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "lang": lang, "t": self.messages(lang), "timeZone": self.settings.timezone,
            "basemap": self.basemap.script_config(),
            "silentAfterS": SILENT_AFTER_S,
            # The server's clock when the page was made: ages (« il y a 10 min ») count on it, not on
            # the reader's PC, which may run minutes off (app.js ``serverNow``).
            "serverNow": int(time.time() * 1000),
            "defaultPeriod": "90", "days": [FIRST_DAY.isoformat(), LAST_DAY.isoformat()],  # what the API accepts
            **extra,
        }

    def render(self, request: Request, page: str, template: str, who: Principal | None = None,
               **extra: Any) -> HTMLResponse:
        lang = request_lang(request)
        script = extra.pop("script", {})
        context = {
            "page": page, "lang": lang, "other_lang": next(x for x in LANGUAGES if x != lang),
            "t": self.messages(lang), "nav": navigation(request, who),
            "streams": [s.value for s in self.sorting_rules.streams], "categories": self.sorting_rules.categories,
            "config": self.script_config(lang, script), **extra,
        }
        return self.templates.TemplateResponse(request, f"dashboard/{template}", context)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def reminders_href(request: Request) -> str | None:
    # mount_reminders leaves its service on app.state. Looking for the path in app.routes does not
    # work: FastAPI >= 0.16x keeps included routers nested, so the menu silently lost the page.
    return REMINDERS_PATH if getattr(request.app.state, "reminders", None) is not None else None


@dataclass(frozen=True, slots=True)
class Menu:
    """The top bar's pages: ``main`` in the bar, ``admin`` under its « Administration » button."""

    main: tuple[NavItem, ...]
    admin: tuple[NavItem, ...] = ()

    def groups(self, page: str) -> bool:
        """Whether ``page`` sits under the button, which then shows where the reader is."""
        return any(name == page for _key, _path, name in self.admin)


def menu_for(who: Principal | None, items: tuple[NavItem, ...]) -> Menu:
    """The menu items ``who`` can use (a page without a signed-in caller shows no menu anyway)."""
    allowed = tuple(item for item in items if who is None or (
        who.can(NAV_ROLES.get(item[2], "viewer")) and (who.communes is None or item[2] in SCOPED_PAGES)))
    if who is None or not who.can("admin"):
        return Menu(allowed)
    return Menu(
        tuple(item for item in allowed if item[2] not in ADMIN_GROUP),
        tuple(item for item in allowed if item[2] in ADMIN_GROUP),
    )


def navigation(request: Request, who: Principal | None = None) -> Menu:
    """The menu; the reminders page joins it once the reminders module is mounted."""
    if reminders_href(request) is None:
        return menu_for(who, NAV)
    return menu_for(who, (*NAV, ("nav.reminders", REMINDERS_PATH, "reminders")))


def page_router(pages: Pages) -> APIRouter:
    # No browser keeps a page (server.web.private): they show who is signed in and lead to households.
    router = APIRouter(include_in_schema=False, route_class=NoStoreRoute)

    @router.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/carte", status_code=303)

    @router.get("/login")
    @open_to_communes  # a signed-in caller goes on to its page, which decides
    def login(request: Request, who: MaybePrincipal, next: str | None = None) -> Response:
        if who is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        # login.js warns, on a page that is no secure context (http:// from another PC), that the
        # browser will drop a Secure cookie (server.web.login.cookie_dropped).
        return pages.render(request, "login", "login.html",
                            script={"secureCookie": pages.settings.session_cookie_secure})

    @router.get("/langue/{lang}")
    def switch_language(lang: str, next: str | None = None) -> RedirectResponse:
        if lang not in LANGUAGES:
            raise HTTPException(404, f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
        return response

    for _key, path, name in NAV:
        router.add_api_route(path, _simple_page(pages, name), methods=["GET"], response_model=None)

    @router.get("/rues/{street_id}")
    @open_to_communes
    def street(request: Request, street_id: RowId, who: MaybePrincipal, db: SessionDep) -> Response:
        if who is None:
            return login_redirect(request)
        # A page of empty panels looked like a street without lifts; another commune's street is as absent.
        if db.get(Street, street_id) is None or not street_in_scope(db, who, street_id):
            # A page, not the API's JSON: a bookmark from before a street re-import lands here.
            missing = pages.render(request, "street", "not_found.html", who)
            missing.status_code = 404
            return missing
        # Only managers prepare campaigns: others would reach a page that refuses them.
        campaign = reminders_href(request) if who.can("manager") and who.communes is None else None
        return pages.render(request, "street", "street.html", who, street_id=street_id,
                            reminders_href=campaign, script={"streetId": street_id})

    return router


def _simple_page(pages: Pages, name: str) -> Any:
    def page(request: Request, who: MaybePrincipal) -> Response:
        if who is None:
            return login_redirect(request)
        with_category = name in ("map", "ranking")  # the ranking is the map's text alternative
        # A viewer reaching /annotation by its address gets the notice, not tools that all answer 403.
        allowed = who.can(NAV_ROLES.get(name, "viewer"))
        return pages.render(request, name, f"{name}.html", who, with_category=with_category, allowed=allowed)

    page.__name__ = f"page_{name}"
    return open_to_communes(page) if name in SCOPED_PAGES else page
