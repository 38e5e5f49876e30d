"""The *Journal d'audit* page (``/journal``, admins) in Chromium: from a truck on *Flotte* to its
configuration history, paged with « Entrées plus anciennes », filtered by the form, escaped, in the
collectivité's time, at 320 px, in French and English; refused to a manager."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from server.audit import AuditEntry
from tests.dashboard.conftest import SILENT_TRUCK, Browser, LiveServer
from tests.dashboard.test_rgaa import OVERFLOWING

pytestmark = pytest.mark.slow

ADMIN = "administratrice"
PAGE = 50  # journal.js
FIRST = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris
HOSTILE_ACTOR = 'user:<img src=x onerror="window.pwned=1">'
HOSTILE_DETAIL = '</td><script>window.pwned=2</script><svg onload="window.pwned=3">stream: "glass" -> null'
HISTORY = 60  # the truck's config changes: more than a page


@pytest.fixture
def config_history(live_server: LiveServer) -> Iterator[list[int]]:
    """SILENT_TRUCK's configuration changes, one a minute from FIRST (ids in that order), the 46th
    by an actor and with a detail a hostile name would write, then a rollout's model change, and two
    by another admin the next day."""
    rows = [AuditEntry(at=FIRST + timedelta(minutes=i), actor="user:camille", action="truck.config",
                       target=SILENT_TRUCK, detail=f"conf: {i / 100} -> {(i + 1) / 100}") for i in range(HISTORY)]
    rows[45].actor, rows[45].detail = HOSTILE_ACTOR, HOSTILE_DETAIL
    rows.append(AuditEntry(at=FIRST + timedelta(minutes=HISTORY), actor="system", action="truck.model",
                           target=SILENT_TRUCK, detail="trivue-waste 2026.12.03 (was 2026.12.02)"))  # a rollout
    rows += [AuditEntry(at=FIRST + timedelta(days=1, minutes=i), actor="user:dominique", action="truck.config",
                        target=SILENT_TRUCK, detail='stream: null -> "glass"') for i in range(2)]
    with live_server.sessions() as db:
        db.add_all(rows)
        db.commit()
        ids = [row.id for row in rows]
    try:
        yield ids
    finally:
        with live_server.sessions() as db:
            db.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
            db.commit()


def cells(browser: Browser, column: int) -> list[str]:
    return browser.page.locator(f"#journal tbody tr td:nth-child({column})").all_inner_texts()


def test_a_trucks_configuration_history_from_the_fleet_page_filtered_and_paged(browser: Browser,
                                                                                config_history: list[int]) -> None:
    page = browser.page
    browser.login(ADMIN, "/flotte")
    page.wait_for_selector("body[data-ready=true]")
    link = page.locator(f"tr[data-truck={SILENT_TRUCK}] a[data-history=config]")
    assert link.inner_text() == "historique de configuration"
    assert link.get_attribute("href") == f"/journal?target={SILENT_TRUCK}"
    assert "Journal d'audit" in page.locator("nav .nav a").all_inner_texts()
    browser.shot("journal-fleet-admin")
    link.click()
    page.wait_for_url("**/journal?*")
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_label("Cible").input_value() == SILENT_TRUCK
    assert page.get_by_label("Action").input_value() == ""  # its config and its models (truck.model) alike

    ids = [int(i) for i in page.locator("#journal tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.id)")]
    assert ids == sorted(config_history, reverse=True)[:PAGE]  # newest first, one page
    assert set(cells(browser, 4)) == {SILENT_TRUCK} and set(cells(browser, 3)) == {"truck.config", "truck.model"}
    # The newest change of FIRST's day by an admin: 08:59 UTC is 09:59:00 in Paris, whatever the browser's zone.
    assert cells(browser, 1)[3] == "01/12/2026 09:59:00"
    assert page.locator("#journal-status").inner_text() == "50 entrées affichées, les plus récentes en premier."
    hostile = page.locator(f"#journal tbody tr[data-id='{config_history[45]}'] td")
    assert hostile.nth(1).inner_text() == HOSTILE_ACTOR and hostile.nth(4).inner_text() == HOSTILE_DETAIL
    browser.shot("journal-truck-history")

    older = page.get_by_role("button", name="Entrées plus anciennes")
    page.get_by_label("Auteur").fill("user:dominique")  # typed, not applied: the list on screen goes on
    older.click()
    page.locator("#journal tbody tr").nth(HISTORY + 1).wait_for()
    ids = [int(i) for i in page.locator("#journal tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.id)")]
    assert ids == sorted(config_history, reverse=True)  # the rest, no gap, no repeat
    assert older.is_hidden()
    assert page.locator("#journal-status").inner_text().endswith("Il n'y en a pas d'autre.")
    # Text, never markup: no element of theirs, no script run.
    assert page.locator("#journal tbody img, #journal tbody svg, #journal tbody script").count() == 0
    assert page.evaluate("window.pwned") is None

    page.get_by_label("Auteur").fill("user:dominique")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_function("document.querySelectorAll('#journal tbody tr').length === 2")
    assert set(cells(browser, 2)) == {"user:dominique"} and "actor=user%3Adominique" in page.url
    assert older.is_hidden()

    page.get_by_label("Du", exact=True).fill("2026-12-03")
    page.get_by_label("Au", exact=True).fill("2026-12-02")
    page.get_by_role("button", name="Filtrer").click()
    assert "« Du » doit venir avant" in page.locator("#j-dates-error").inner_text()
    assert "since=" not in page.url  # nothing asked, the entries shown stay
    page.get_by_label("Du", exact=True).fill("2026-12-02")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**since=2026-12-02*")
    page.wait_for_function("document.querySelectorAll('#journal tbody tr').length === 2")
    page.get_by_label("Du", exact=True).fill("2026-12-01")
    page.get_by_label("Au", exact=True).fill("2026-12-01")
    page.get_by_role("button", name="Filtrer").click()  # dominique's changes are on the 2nd
    page.locator("#journal tbody td[colspan]").filter(has_text="Aucune entrée pour ces filtres.").wait_for()
    browser.shot("journal-filtered-empty")


def test_a_manager_gets_the_notice_and_no_history_link(browser: Browser) -> None:
    browser.login("gestionnaire", "/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("a[data-history]").count() == 0
    assert "Journal d'audit" not in browser.page.locator("nav .nav a").all_inner_texts()
    browser.goto(f"/journal?target={SILENT_TRUCK}")
    assert browser.page.get_by_text("Cette page est réservée aux administrateurs.").is_visible()
    assert browser.page.locator("#journal, #journal-filters").count() == 0


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_journal_reflows_at_320_px_in_both_languages(browser: Browser, config_history: list[int],
                                                         lang: str) -> None:
    browser.login(ADMIN, "/journal")
    if lang == "en":
        browser.page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
    page = browser.page
    page.set_viewport_size({"width": 320, "height": 640})
    browser.goto(f"/journal?target={SILENT_TRUCK}")
    page.wait_for_selector("body[data-ready=true]")
    heading = {"fr": "Journal d'audit", "en": "Audit log"}[lang]
    assert page.locator("h1").inner_text() == heading
    assert page.get_by_role("button", name={"fr": "Entrées plus anciennes", "en": "Older entries"}[lang]).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320, page.evaluate(OVERFLOWING)
    browser.shot(f"journal-320-{lang}")
