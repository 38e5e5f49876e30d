"""Who may call what: every route of the app against every role, login throttling, cookies, CSRF.

``ACCESS`` is the access policy, one line per route. A route added to the app without a line
here fails ``test_every_route_has_an_access_rule``: deciding who may call it is part of adding it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from server.web.auth import add_user, create_token
from server.web.deps import SESSION_COOKIE

PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "annotator", "manager", "admin")
PUBLIC, PAGE = "public", "page"  # pages: any signed-in role, anonymous users go to /login

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/accessibilite"): PUBLIC,  # the déclaration d'accessibilité: anyone may read it
    ("GET", "/docs"): PUBLIC,  # the API reference (Swagger UI from this server's files), as /openapi.json
    ("GET", "/api/reminders/households/{key}/access"): "admin",  # right of access: the whole household's data
    ("GET", "/langue/{lang}"): PUBLIC,
    **{("GET", page): PAGE for page in ("/carte", "/classement", "/alertes", "/flotte", "/qualite", "/rappels",
                                        "/rues/{street_id}", "/annotation", "/journal")},
    # Street level: every role.
    **{("GET", path): "viewer" for path in (
        "/api/streets", "/api/streets.geojson", "/api/streets/{street_id}", "/api/trucks", "/metrics",
        "/api/me", "/api/network.geojson", "/api/error-rates", "/api/data-quality",
        "/api/opendata/streets.csv", "/api/opendata/streets.geojson")},
    # Household level (lifts, photos, raw messages, contacts, reminders): managers.
    **{("GET", path): "manager" for path in (
        "/api/alerts", "/api/alerts/stream",  # lift by lift: near a household on a short street
        "/api/lifts", "/api/lifts/{event_id}", "/api/lifts/{event_id}/evidence.jpg", "/api/dead-letters",
        "/api/reminders/campaigns", "/api/reminders/campaigns/{campaign_id}",
        "/api/reminders/campaigns/{campaign_id}/effect", "/api/reminders/campaigns/{campaign_id}/files/{name}",
        "/api/reminders/campaigns/{campaign_id}/route-sheet.pdf", "/api/reminders/false-detections",
        "/api/reminders/campaigns/{campaign_id}/letters", "/api/reminders/campaigns/{campaign_id}/letters.pdf",
        "/api/reminders/households", "/api/reminders/households/opt-outs",
        "/api/reminders/items/{item_id}/preview", "/api/reminders/plan",
        "/api/reminders/rules", "/api/reminders/templates", "/api/reminders/templates/preview")},
    **{("POST", path): "manager" for path in (
        "/api/reminders/campaigns", "/api/reminders/campaigns/{campaign_id}/send",
        "/api/reminders/campaigns/{campaign_id}/retry",
        "/api/reminders/households/import", "/api/reminders/households/{key}/opt-out",
        "/api/reminders/households/{key}/opt-in", "/api/reminders/items/{item_id}/review")},
    ("DELETE", "/api/reminders/households/{key}"): "manager",
    # A lift's judgement overruled by a person, and its undo (server.ingest.overrule).
    **{(method, "/api/lifts/{event_id}/overrule"): "manager" for method in ("POST", "DELETE")},
    # Models and rollouts are shown on the fleet page.
    **{("GET", path): "viewer" for path in ("/api/models", "/api/models/{sha}", "/api/rollouts")},
    # Labelling field photos (the blurred hopper, no household data): annotators, managers, admins.
    **{("GET", path): "annotator" for path in (
        "/api/labels/classes", "/api/labels/queue", "/api/labels/photos/{event_id}",
        "/api/labels/photos/{event_id}/photo.jpg")},
    ("POST", "/api/labels/photos/{event_id}/decisions"): "annotator",
    # Fleet and audit: admins (a truck's own token also downloads models and reads its config:
    # tests/fleet/test_registry.py).
    ("PUT", "/api/trucks/{truck_id}/config"): "admin",
    ("GET", "/api/trucks/{truck_id}/config"): "admin",
    ("GET", "/api/models/{sha}.onnx"): "admin",
    ("POST", "/api/models/{sha}/rollout"): "admin",
    ("POST", "/api/models/{sha}/confirm"): "admin",
    ("POST", "/api/rollouts/rollback"): "admin",
    ("GET", "/api/audit"): "admin",
}
PATH_VALUES = {"event_id": str(uuid.uuid4()), "street_id": "1", "truck_id": "truck-a", "lang": "fr", "sha": "a" * 64}
# What an allowed call gets from this empty site, where the ids above name nothing, the body is ``{}``, the
# household level is off (production default) and ingest is disabled. Every other allowed call is < 400.
ALLOWED_BUT: dict[tuple[str, str], int] = {
    **{("GET", path): 404 for path in (  # nothing stored under these ids
        "/api/streets/{street_id}", "/rues/{street_id}", "/api/lifts/{event_id}", "/api/lifts/{event_id}/evidence.jpg",
        "/api/labels/photos/{event_id}", "/api/labels/photos/{event_id}/photo.jpg", "/api/models/{sha}",
        "/api/models/{sha}.onnx", "/api/trucks/{truck_id}/config", "/api/reminders/campaigns/{campaign_id}",
        "/api/reminders/campaigns/{campaign_id}/effect", "/api/reminders/campaigns/{campaign_id}/files/{name}",
        "/api/reminders/campaigns/{campaign_id}/route-sheet.pdf", "/api/reminders/items/{item_id}/preview",
        "/api/reminders/campaigns/{campaign_id}/letters", "/api/reminders/campaigns/{campaign_id}/letters.pdf")},
    **{("POST", path): 404 for path in ("/api/reminders/campaigns/{campaign_id}/send",
                                        "/api/reminders/campaigns/{campaign_id}/retry", "/api/models/{sha}/confirm")},
    ("GET", "/api/error-rates"): 422,  # ?category= is required
    **{("POST", path): 422 for path in (  # the empty body, or nothing to act on
        "/api/labels/photos/{event_id}/decisions", "/api/models/{sha}/rollout", "/api/reminders/campaigns",
        "/api/reminders/items/{item_id}/review", "/api/rollouts/rollback", "/api/reminders/households/{key}/opt-out",
        "/api/reminders/households/{key}/opt-in")},
    ("DELETE", "/api/reminders/households/{key}"): 422,  # "1" is no household key
    ("POST", "/api/lifts/{event_id}/overrule"): 422,  # no reason given
    ("DELETE", "/api/lifts/{event_id}/overrule"): 404,  # no such lift
    ("GET", "/api/reminders/households/{key}/access"): 422,
    # The household level is off: contacts are refused by the switch, after the access check.
    ("GET", "/api/reminders/households"): 409,
    ("GET", "/api/reminders/households/opt-outs"): 409,
    ("POST", "/api/reminders/households/import"): 409,
    ("PUT", "/api/trucks/{truck_id}/config"): 503,  # no broker to publish the config on
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, through included routers."""
    from fastapi.routing import _IncludedRouter  # how FastAPI 0.16x keeps included routers

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            if isinstance(route, _IncludedRouter):
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                yield from ((method, prefix + route.path) for method in route.methods)

    return set(walk(app.routes, ""))


class Site:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.sessions() as session:
            self.tokens = {role: create_token(session, role, f"t-{role}") for role in ROLES}
            for role in ROLES:
                add_user(session, f"user-{role}", PASSWORD, role)
            session.commit()

    def call(self, method: str, path: str, role: str | None, **kwargs: Any) -> Any:
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        return self.client.request(method, url, headers=headers, follow_redirects=False, **body, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data: Path = tmp_path_factory.mktemp("access")
    settings = load_settings(env={}, data_dir=data, ingest_enabled=False)  # production defaults: no dev
    with TestClient(create_app(settings), base_url="https://trivue.test") as client:
        yield Site(client)


@pytest.fixture(scope="module")
def household_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The same, with the household level switched on: the contacts import really imports."""
    data: Path = tmp_path_factory.mktemp("access-household")
    settings = load_settings(env={}, data_dir=data, ingest_enabled=False).model_copy(update={"household_level": True})
    with TestClient(create_app(settings), base_url="https://trivue.test") as client:
        yield Site(client)


def test_every_route_has_an_access_rule(site: Site) -> None:
    served = {(m, p) for m, p in app_routes(site.client.app) if m != "HEAD"}
    assert sorted(served - set(ACCESS)) == [], "new routes: add them to ACCESS with the least role allowed"
    assert sorted(set(ACCESS) - served) == [], "ACCESS lists routes the app no longer serves"
    assert sorted(set(ALLOWED_BUT) - set(ACCESS)) == [], "ALLOWED_BUT lists routes ACCESS does not"


CASES = [(method, path, rule, role) for (method, path), rule in ACCESS.items() if rule != PUBLIC
         for role in (None, *ROLES)]


@pytest.mark.parametrize("method,path,rule,role", CASES,
                         ids=[f"{m} {p} as {r or 'anonymous'}" for m, p, _, r in CASES])
def test_each_role_gets_exactly_what_the_policy_grants(site: Site, method: str, path: str, rule: str,
                                                      role: str | None) -> None:
    allowed = role is not None and (rule == PAGE or ROLES.index(role) >= ROLES.index(rule))
    if allowed and path.endswith("/stream"):
        pytest.skip("an event stream that is allowed never ends; its refusals are tested")
    status = site.call(method, path, role)
    if role is None and rule == PAGE:
        assert status.status_code == 303 and status.headers["location"].startswith("/login")
    elif role is None:
        assert status.status_code == 401
    elif allowed and (method, path) in ALLOWED_BUT:
        assert status.status_code == ALLOWED_BUT[(method, path)], status.text[:200]
    elif allowed:
        assert status.status_code < 400, status.text[:200]
    else:
        assert status.status_code == 403


# The only routes a truck's token may call (its own config, the models it is asked to run): here they
# name nothing, so 404; tests/fleet/test_registry.py covers what they serve.
TRUCK_ROUTES = {("GET", "/api/trucks/{truck_id}/config"): 404, ("GET", "/api/models/{sha}.onnx"): 404}


def test_a_truck_token_gets_403_on_every_route_but_its_own_two(site: Site) -> None:
    """A token taken from a truck computer reveals nothing: every route the policy gives a role on
    the ladder refuses it, the live alert stream included (it used to check the login only), and
    the dashboard's pages (they answered 200 with a shell whose every call was 403)."""
    with site.client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        site.tokens["truck"] = create_token(session, "truck", "truck:truck-a", PATH_VALUES["truck_id"])
        session.commit()
    for (method, path), rule in ACCESS.items():
        if rule == PUBLIC:
            continue
        expected = TRUCK_ROUTES.get((method, path), 403)
        if path.endswith("/stream"):  # an allowed stream never ends: read its status only
            headers = {"Authorization": f"Bearer {site.tokens['truck']}"}
            with site.client.stream(method, path, headers=headers) as response:
                assert response.status_code == expected, (method, path)
            continue
        assert site.call(method, path, "truck").status_code == expected, (method, path)


def test_a_forged_or_revoked_looking_token_is_refused(site: Site) -> None:
    for header in ("Bearer trv_" + "A" * 43, "Bearer " + site.tokens["admin"][:-1] + "x", "Basic YWRtaW46YWRtaW4=",
                   "Bearer", site.tokens["admin"]):
        assert site.client.get("/api/trucks", headers={"Authorization": header}).status_code == 401


def test_no_default_account_exists(site: Site) -> None:
    for name, password in [("admin", "admin"), ("admin", "password"), ("trivue", "trivue"), ("root", "root")]:
        response = site.client.post("/api/login", json={"name": name, "password": password})
        assert response.status_code == 401


def test_session_cookie_is_secure_httponly_samesite_and_expires(site: Site) -> None:
    response = site.client.post("/api/login", json={"name": "user-viewer", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "max-age", "path"} <= attributes
    assert re.search(r"samesite=(lax|strict)", cookie, re.IGNORECASE)
    max_age = int(re.search(r"max-age=(\d+)", cookie, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    assert 0 < max_age <= 24 * 3600
    site.client.cookies.clear()


def test_logout_ends_the_session_on_the_server(site: Site) -> None:
    login = site.client.post("/api/login", json={"name": "user-manager", "password": PASSWORD})
    key = login.cookies[SESSION_COOKIE]
    site.client.cookies.clear()
    cookie = {"Cookie": f"{SESSION_COOKIE}={key}"}
    assert site.client.get("/api/lifts", headers=cookie).status_code == 200
    site.client.post("/api/logout", headers=cookie)
    site.client.cookies.clear()
    assert site.client.get("/api/lifts", headers=cookie).status_code == 401  # a stolen copy is dead too


def test_json_routes_refuse_bodies_a_cross_site_form_can_send(site: Site) -> None:
    """A cross-site HTML form can only send form or text/plain bodies; JSON routes must refuse them."""
    headers = {"Authorization": f"Bearer {site.tokens['admin']}", "Content-Type": "text/plain"}
    response = site.client.put("/api/trucks/truck-a/config", content=b'{"stream": "glass"}', headers=headers)
    assert response.status_code == 422


def test_repeated_failed_logins_are_throttled(site: Site) -> None:
    codes = [site.client.post("/api/login", json={"name": "User-Admin", "password": f"guess-{i}"}).status_code
             for i in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    # Locked means locked: the right password does not get through until the lock expires, and
    # changing the case of the name does not start a fresh count.
    right = site.client.post("/api/login", json={"name": "user-admin", "password": PASSWORD})
    assert right.status_code == 429
    assert site.client.get("/api/trucks", headers={"Authorization": f"Bearer {site.tokens['admin']}"}
                           ).status_code == 200  # tokens are not locked out with the password


def test_cross_site_form_post_with_the_session_cookie_is_refused(site: Site) -> None:
    login = site.client.post("/api/login", json={"name": "user-manager", "password": PASSWORD})
    key = login.cookies[SESSION_COOKIE]
    site.client.cookies.clear()
    response = site.client.post(
        "/api/reminders/households/import", content=b"key,name,email,phone,postal_address\nk1,X,x@evil.example,,",
        headers={"Cookie": f"{SESSION_COOKIE}={key}", "Content-Type": "text/plain",
                 "Origin": "https://evil.example"})
    assert response.status_code == 403  # the same-origin guard answers first


IMPORT = "/api/reminders/households/import"
CONTACTS = b"key,name,email,phone,postal_address\nbin:K1,X,x@evil.example,,"


def manager_cookie(site: Site) -> dict[str, str]:
    login = site.client.post("/api/login", json={"name": "user-manager", "password": PASSWORD})
    key = login.cookies[SESSION_COOKIE]
    site.client.cookies.clear()
    return {"Cookie": f"{SESSION_COOKIE}={key}"}


def test_contacts_import_refuses_what_a_cross_site_form_can_send(site: Site) -> None:
    """Multipart is a form type too: with the cookie it needs this server's Origin (or Referer);
    a page can strip its Referer, so a cookie-only form post without either is refused."""
    cookie = manager_cookie(site)
    files = {"file": ("contacts.csv", CONTACTS, "text/csv")}
    forged = [({"Origin": "https://evil.example"}, {"files": files}),
              ({"Origin": "null"}, {"files": files}),
              ({"Referer": "https://evil.example/page"}, {"files": files}),
              ({}, {"files": files}),  # no Origin, no Referer
              ({"Origin": "https://evil.example", "Content-Type": "text/csv"}, {"content": CONTACTS}),
              ({"Origin": "https://trivue.test.evil.example"}, {"files": files})]
    for headers, body in forged:
        response = site.client.post(IMPORT, headers={**cookie, **headers}, **body)
        assert response.status_code == 403, (headers, response.text)
    for kind in ("text/plain", "application/x-www-form-urlencoded"):  # same origin, still not an import format
        response = site.client.post(IMPORT, content=CONTACTS,
                                    headers={**cookie, "Origin": "https://trivue.test", "Content-Type": kind})
        assert response.status_code == 415, kind
    token = {"Authorization": f"Bearer {site.tokens['manager']}", "Content-Type": "text/plain"}
    assert site.client.post(IMPORT, content=CONTACTS, headers=token).status_code == 415


def same_origin_imports(site: Site) -> list[Any]:
    """The contacts import as the dashboard (or a token holder) sends it: each passes the same-origin guard."""
    cookie = manager_cookie(site)
    same = {**cookie, "Origin": "https://trivue.test"}
    passed = [site.client.post(IMPORT, content=CONTACTS, headers={**same, "Content-Type": "text/csv"}),
              site.client.post(IMPORT, json={"csv": CONTACTS.decode()}, headers=same),
              site.client.post(IMPORT, files={"file": ("c.csv", CONTACTS, "text/csv")}, headers=same),
              site.client.post(IMPORT, files={"file": ("c.csv", CONTACTS, "text/csv")},
                               headers={**cookie, "Referer": "https://trivue.test/rappels"}),
              site.client.post(IMPORT, content=CONTACTS, headers={**cookie, "Content-Type": "text/csv"}),
              site.client.post(IMPORT, files={"file": ("c.csv", CONTACTS, "text/csv")},
                               headers={"Authorization": f"Bearer {site.tokens['manager']}"})]
    return passed


def test_contacts_import_from_the_dashboard_passes_the_guard(household_site: Site) -> None:
    passed = same_origin_imports(household_site)
    assert [r.status_code for r in passed] == [200] * 6, [r.text[:200] for r in passed]
    # One contact (bin:K1): added by the first import, updated by each of the five others.
    counts = [(r.json()["imported"], r.json()["updated"], r.json()["refused"]) for r in passed]
    assert counts == [(1, 0, 0)] + [(0, 1, 0)] * 5


def test_contacts_import_passes_the_guard_then_meets_the_household_switch(site: Site) -> None:
    for response in same_origin_imports(site):  # 409, not 403/415: the guard let it through
        assert response.status_code == 409 and "L'import des contacts des foyers est refusé" in response.text
