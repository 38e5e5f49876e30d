"""The Alertes page for a viewer: the lift-by-lift feed is for managers and admins (docs/privacy.md,
section 1); a viewer who reaches /alertes by its address reads why and where the street figures are,
and the page opens no feed (no 403 in the console, no "disconnected" badge)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from server.web.auth import set_communes, set_role
from tests.dashboard.conftest import Browser


def test_a_viewer_gets_an_explanation_and_no_feed_on_the_alerts_page(browser: Browser) -> None:
    page = browser.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    browser.login("lecteur", "/classement")
    assert page.locator("nav a[href='/alertes']").count() == 0  # not in a viewer's menu
    browser.goto("/alertes")
    notice = page.locator("#alerts-forbidden")
    notice.wait_for()
    text = notice.inner_text()
    assert "réservé aux gestionnaires" in text
    assert page.locator("#alerts-forbidden a[href='/classement']").count() == 1
    assert page.locator("#alerts, #live").count() == 0
    page.wait_for_load_state("networkidle")
    assert not [url for url in requests if "/api/alerts" in url]
    browser.shot("alertes-lecteur")


def test_a_manager_still_gets_the_live_feed(browser: Browser) -> None:
    browser.login(path="/alertes")
    browser.page.wait_for_selector("#live.on")
    assert browser.page.locator("#alerts-forbidden").count() == 0


def watch_alerts(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> Page:
    """The manager's Alertes page, its feed live, the server checking the caller every 0.5 s."""
    import server.web.dashboard_api

    monkeypatch.setattr(server.web.dashboard_api, "AUTH_RECHECK_S", 0.5)
    browser.login(path="/alertes")
    browser.page.wait_for_selector("#live.on")
    return browser.page


def test_an_open_alerts_page_turns_into_the_notice_when_its_manager_becomes_a_viewer(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the stream at its next role check; the page must not retry a refused stream
    forever (« Déconnecté »): it finds the new role and shows the notice."""
    page = watch_alerts(browser, monkeypatch)
    try:
        with browser.server.sessions() as db:
            set_role(db, "gestionnaire", "viewer")
            db.commit()
        page.locator("#alerts-forbidden").wait_for(timeout=15_000)
    finally:
        with browser.server.sessions() as db:
            set_role(db, "gestionnaire", "manager")
            db.commit()
    browser.expected += [e for e in browser.errors if "403" in e]


def test_an_open_alerts_page_leaves_the_feed_when_its_manager_is_limited_to_communes(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed is the whole territory's: an account limited to some communes meanwhile (its role
    unchanged) gets 403 for good; the page reloads into « Page non ouverte à ce compte » rather
    than retry the refused stream every 5 s, the territory's alerts still on screen."""
    page = watch_alerts(browser, monkeypatch)
    try:
        with browser.server.sessions() as db:
            set_communes(db, "gestionnaire", ["45234"])
            db.commit()
        page.get_by_role("heading", name="Page non ouverte à ce compte").wait_for(timeout=15_000)
        assert page.locator("#alerts").count() == 0
        browser.shot("alertes-limite-communes")
    finally:
        with browser.server.sessions() as db:
            set_communes(db, "gestionnaire", None)
            db.commit()
    browser.expected += [e for e in browser.errors if "403" in e]
