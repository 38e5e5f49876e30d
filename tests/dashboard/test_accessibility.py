"""Accessibility (RGAA 4.1 / WCAG 2.1 AA): axe-core on every page and main state, and a keyboard walk.

axe-core comes from npm (pinned in ``server/static/package-lock.json`` as a devDependency,
installed by ``make dashboard-assets`` under ``build/dashboard-npm``) and is injected by the test
only: the server never serves it. No serious or critical violation is allowed, and nothing is
left "for review" (axe's *incomplete* results: contrast it could not compute, name mismatches...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from base.paths import REPO_ROOT
from tests.dashboard.conftest import Browser

AXE = REPO_ROOT / "build" / "dashboard-npm" / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("serious", "critical")


def axe(browser: Browser) -> dict[str, Any]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make dashboard-assets` (npm ci installs axe-core {AXE_VERSION})")
    page = browser.page
    # Evaluated through the DevTools protocol: the page's content security policy (scripts from the
    # server only) rightly refuses an injected <script>, and axe is no part of the server.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    assert page.evaluate("axe.version") == AXE_VERSION
    return page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                         "resultTypes: ['violations', 'incomplete']})", WCAG_TAGS)


def describe(results: list[dict[str, Any]]) -> str:
    lines = []
    for result in results:
        lines.append(f"{result['id']} ({result['impact']}): {result['help']}")
        for node in result["nodes"][:8]:
            why = "; ".join(check["message"] for check in node["any"] + node["all"] + node["none"])
            lines.append(f"  {json.dumps(node['target'])}: {why}")
    return "\n".join(lines)


def check(browser: Browser, state: str) -> None:
    """No serious or critical violation, and nothing for review; a screenshot for a person."""
    result = axe(browser)
    blocking = [v for v in result["violations"] if v["impact"] in BLOCKING]
    assert blocking == [], f"{state}: axe violations\n{describe(blocking)}"
    assert result["incomplete"] == [], f"{state}: axe items for review\n{describe(result['incomplete'])}"
    browser.shot(f"a11y-{state}")


def map_ready(browser: Browser) -> None:
    browser.page.wait_for_selector("body[data-map-state=ready]")


def _street(browser: Browser) -> None:
    browser.goto(f"/rues/{browser.server.city.streets['dirty'][0]}")
    browser.page.locator("#recent img").first.wait_for()


def _quiet_street(browser: Browser) -> None:
    """A street with no lift in the period: empty breakdown, no photos (the page's empty states)."""
    seeded = {sid for ids in browser.server.city.streets.values() for sid in ids}
    quiet = next(sid for sid in range(1, 10_000) if sid not in seeded)
    browser.goto(f"/rues/{quiet}")
    browser.page.wait_for_load_state("networkidle")
    # Its statistics are refused (no lift: nothing to show even a manager); Chromium logs the 403.
    browser.expected.append("console: Failed to load resource: the server responded with a status of 403 "
                            "(Forbidden)")


def _review_queue(browser: Browser) -> None:
    page = browser.page
    browser.goto("/rappels")
    page.wait_for_load_state("networkidle")
    if page.locator("#queue li").count():
        return  # a campaign made by an earlier test: the plan now proposes nothing new (cool-down)
    page.get_by_role("button", name="Simuler").click()
    page.locator("#plan-status").filter(has_text="proposés").wait_for()
    page.get_by_label("Nom de la campagne").fill("Accessibilité")
    page.get_by_role("button", name="Créer la campagne").click()
    page.locator("#queue li").first.wait_for()


def _journal(browser: Browser) -> None:
    """The audit log as an admin reads it (a manager gets the notice: "journal-refus")."""
    browser.page.context.clear_cookies()
    browser.login("administratrice", "/journal")
    browser.page.wait_for_selector("body[data-ready=true]")


STATES: dict[str, Callable[[Browser], None]] = {
    "carte": lambda b: (b.goto("/carte"), map_ready(b)),
    "carte-erreur-verre": lambda b: (b.goto("/carte?category=verre"), map_ready(b)),
    "classement": lambda b: (b.goto("/classement"), b.page.locator("#worst tbody tr").first.wait_for()),
    "rue": _street,
    "rue-sans-levee": _quiet_street,
    "flotte": lambda b: (b.goto("/flotte"), b.page.locator("#fleet tbody tr").first.wait_for()),
    "alertes": lambda b: (b.goto("/alertes"), b.page.wait_for_load_state("networkidle")),
    "qualite": lambda b: (b.goto("/qualite"), b.page.wait_for_load_state("networkidle")),
    "rappels": lambda b: (b.goto("/rappels"), b.page.wait_for_load_state("networkidle")),
    "rappels-relecture": _review_queue,
    "journal": _journal,
    "journal-refus": lambda b: (b.goto("/journal"), b.page.get_by_text("réservée aux administrateurs").wait_for()),
    "accessibilite": lambda b: (b.goto("/accessibilite"),
                                b.page.get_by_role("heading", name="Voies de recours").wait_for()),
}


def test_login_page_and_public_declaration_have_no_serious_violation(browser: Browser) -> None:
    browser.goto("/login")
    check(browser, "login")
    browser.page.get_by_role("link", name="Accessibilité : non conforme").click()  # the footer of every page
    browser.page.wait_for_url("**/accessibilite")
    assert browser.page.locator("nav").count() == 0  # a visitor without login reads it, without the menu
    check(browser, "accessibilite-public")


@pytest.mark.parametrize("state", list(STATES))
def test_every_page_and_state_has_no_serious_violation(browser: Browser, state: str) -> None:
    browser.login()
    STATES[state](browser)
    check(browser, state)


# --- keyboard only -------------------------------------------------------------------------------

FOCUSED = """() => { const e = document.activeElement; const s = getComputedStyle(e);
  const r = e.getBoundingClientRect();
  return {tag: e.tagName.toLowerCase(), id: e.id, text: (e.getAttribute('aria-label') || e.textContent || '').trim(),
          href: e.getAttribute('href'), outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
          visible: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0}; }"""


def tab_until(browser: Browser, wanted: Callable[[dict[str, Any]], bool], limit: int = 120,
              key: str = "Tab") -> list[dict[str, Any]]:
    """Press Tab (or ``key``) until ``wanted(focused)``; every stop must show a visible focus ring."""
    visited = []
    for _ in range(limit):
        browser.page.keyboard.press(key)
        focused = browser.page.evaluate(FOCUSED)
        where = focused["id"] or focused["href"] or focused["text"][:40]
        after = [v["id"] or v["href"] or v["text"][:40] for v in visited[-3:]]
        assert focused["visible"] and focused["outline"], f"focus not visible on {focused['tag']} {where} after {after}"
        visited.append(focused)
        if wanted(focused):
            return visited
    raise AssertionError(f"not reached in {limit} tabs; visited: {[v['text'][:30] or v['id'] for v in visited]}")


def test_keyboard_walk_through_the_map(browser: Browser) -> None:
    browser.login()
    map_ready(browser)
    page = browser.page
    page.keyboard.press("Tab")
    skip = page.evaluate(FOCUSED)
    assert (skip["href"], skip["visible"], skip["outline"]) == ("#main", True, True)
    visited = tab_until(browser, lambda f: f["id"] == "table-link")
    order = [v["id"] or v["href"] for v in visited]
    for stop in ("/carte", "/classement", "/flotte", "/alertes", "/qualite", "/rappels", "f-period", "f-min", "map"):
        assert stop in order, (stop, order)
    # Reading order: menu, then filters, then the map and its zoom, then the side panel's streets.
    assert order.index("/qualite") < order.index("f-period") < order.index("map") < order.index("table-link")
    assert [v["text"] for v in visited if v["tag"] == "a" and v["href"] == "#"] == ["Zoom avant", "Zoom arrière"]
    street = tab_until(browser, lambda f: (f["href"] or "").startswith("/rues/"), limit=3)[-1]
    assert street["text"].startswith(page.locator("#worst-list a").first.inner_text()[:10])
    browser.shot("a11y-clavier-carte")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED)["id"] == "table-link"
    page.keyboard.press("Enter")  # the map's text alternative, same selection
    page.wait_for_url("**/classement*")
    page.locator("#worst tbody tr").first.wait_for()
    assert page.locator("#worst tbody tr").count() >= 4

    browser.goto("/carte")  # the skip link jumps over the menu, straight to the filters
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["id"] == "f-period"


def test_keyboard_sorts_exports_and_opens_a_street_from_the_ranking(browser: Browser) -> None:
    browser.login(path="/classement")
    page = browser.page
    page.locator("#worst tbody tr").first.wait_for()
    tab_until(browser, lambda f: f["text"] == "Trier par Taux")
    assert page.locator("#worst th[data-key=rate]").get_attribute("aria-sort") == "descending"
    page.keyboard.press("Enter")
    sorted_up = "document.querySelector('#worst th[data-key=rate]').getAttribute('aria-sort') === 'ascending'"
    page.wait_for_function(sorted_up)
    assert page.evaluate(FOCUSED)["text"] == "Trier par Taux"  # the rows were redrawn, focus stayed
    with page.expect_download() as download:
        visited = tab_until(browser, lambda f: f["text"] == "Exporter en CSV")  # the second table's
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(".csv")
    assert sum((v["href"] or "").startswith("/rues/") for v in visited) == page.locator("#worst tbody a").count()
    tab_until(browser, lambda f: (f["href"] or "").startswith("/rues/"), key="Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/rues/*")


def test_a_confirmation_dialog_returns_focus_to_the_button_that_opened_it(browser: Browser) -> None:
    browser.login(path="/rappels")
    _review_queue(browser)
    page = browser.page
    page.focus("#campaign-select")  # start from the campaigns bar, past the plan form's date fields
    tab_until(browser, lambda f: f["id"] == "send")
    messages: list[str] = []

    def dismiss(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.keyboard.press("Enter")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'send'")
    assert messages and "envoyer" in messages[0].lower()
    page.wait_for_load_state("networkidle")
    assert "Envoyés" not in page.locator("#campaign-status").inner_text()  # dismissed: nothing was sent


# --- colour is never the only signal ---------------------------------------------------------------

def _luminance(rgb: tuple[int, ...]) -> float:
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (x / 255 for x in rgb)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: tuple[int, ...], other: tuple[int, ...]) -> float:
    """WCAG contrast ratio of two sRGB colours."""
    high, low = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def rgb(css: str) -> tuple[int, ...]:
    if css.startswith("#"):
        return tuple(int(css[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(x)) for x in css[css.index("(") + 1:-1].split(",")[:3])


def test_map_classes_keep_their_contrast_and_differ_by_pattern_and_text(browser: Browser) -> None:
    browser.login()
    map_ready(browser)
    page = browser.page
    classes = page.evaluate("[...Trivue.CLASSES, Trivue.TOO_FEW].map(c => ({color: c.color, dash: c.dash, "
                            "weight: c.weight}))")
    background = rgb(page.evaluate("getComputedStyle(document.getElementById('map')).backgroundColor"))
    for cls in classes:  # WCAG 1.4.11: graphical objects need 3:1 against what is next to them
        assert contrast(rgb(cls["color"]), background) >= 4, cls
        assert contrast(rgb(cls["color"]), (255, 255, 255)) >= 4, cls
    assert len({(c["dash"], c["weight"]) for c in classes}) == len(classes)  # told apart without colour
    legend = page.locator("#legend li")
    assert legend.count() == len(classes)
    for i, cls in enumerate(classes):
        line = legend.nth(i).locator("svg line")
        assert line.get_attribute("stroke") == cls["color"]
        assert line.get_attribute("stroke-dasharray") == cls["dash"]
        assert legend.nth(i).inner_text().strip()  # and a text: "< 5 %", "Trop peu de levées (< 5)"
    dirty = browser.server.city.streets["dirty"][0]
    assert page.evaluate(f"Trivue.mapView.styleOf({dirty})")["weight"] == classes[4]["weight"]
    few = browser.server.city.streets["few"][0]
    assert page.evaluate(f"Trivue.mapView.styleOf({few})")["weight"] == classes[5]["weight"]
