"""Overruling a lift's judgement from the street page's evidence panel, by keyboard, in headless Chromium
against the real server: the panel shows who, when and why, the street's figures count the lift clean,
and the undo puts everything back. French first; the English page words it too."""

from __future__ import annotations

import pytest

from server.db import utcnow
from server.ingest.overrule import undo_overrule
from tests.dashboard.conftest import Browser

pytestmark = pytest.mark.slow

REASON = "Le foyer a envoyé une photo : sac de compost, pas de déchet alimentaire"


def focused(browser: Browser) -> str:
    return str(browser.page.evaluate("() => document.activeElement.textContent || document.activeElement.id"))


def test_a_manager_overrules_a_lift_from_its_photo_and_undoes_it(browser: Browser) -> None:
    server = browser.server
    dirty = server.city.streets["dirty"][0]
    browser.login(path=f"/rues/{dirty}")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    card = page.locator("#recent > li").first
    button = card.get_by_role("button", name="Contester ce jugement")
    event_id = button.get_attribute("aria-controls").removeprefix("overrule-")
    contaminated = int(page.locator("#kpi-contaminated").inner_text().replace("\u202f", ""))
    try:
        assert not card.get_by_label("Motif de la contestation").is_visible()  # closed until asked for
        button.focus()  # the keyboard alone: open, type the reason, tab to the confirmation
        page.keyboard.press("Enter")
        assert button.get_attribute("aria-expanded") == "true"
        assert focused(browser) == f"overrule-{event_id}-reason"
        assert card.get_by_label("Motif de la contestation").is_visible()
        page.keyboard.type(REASON)
        page.keyboard.press("Tab")
        assert focused(browser) == "Confirmer la contestation"
        page.keyboard.press("Enter")

        card.locator(".overruled").wait_for()
        mark = card.locator(".overruled").inner_text()
        assert "Jugement contesté" in mark and "user:gestionnaire" in mark and REASON in mark
        assert focused(browser) == "Annuler la contestation"  # the undo, where the keyboard is
        assert "compte désormais comme conforme" in page.locator("#street-status").inner_text()
        page.wait_for_function(f"() => document.getElementById('kpi-contaminated').textContent.replace(/\\s/g, '')"
                               f" === '{contaminated - 1}'")
        lift = server.api(f"/api/lifts/{event_id}")
        assert lift["overruled"]["reason"] == REASON and lift["contaminated"] is True  # the truck's judgement kept
        model = card.locator("[data-model]")  # which model judged it: what a dispute asks first
        sha = lift["model"]["sha256"]
        assert model.inner_text() == f"Modèle {lift['model']['version']}" + (f" · {sha[:12]}" if sha else "")
        card.scroll_into_view_if_needed()
        browser.shot("12-rue-jugement-conteste")

        page.keyboard.press("Enter")  # undo
        card.get_by_role("button", name="Contester ce jugement").wait_for()
        assert card.locator(".overruled").count() == 0
        page.wait_for_function(f"() => document.getElementById('kpi-contaminated').textContent.replace(/\\s/g, '')"
                               f" === '{contaminated}'")
        assert server.api(f"/api/lifts/{event_id}")["overruled"] is None

        browser.goto(f"/langue/en?next=/rues/{dirty}")
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#recent > li").first.get_by_role("button", name="Overrule this judgement").is_visible()
    finally:
        with server.sessions() as session:  # the session's city stays as the other tests expect it
            undo_overrule(session, event_id, utcnow())
            session.commit()
        browser.goto("/langue/fr?next=/carte")
