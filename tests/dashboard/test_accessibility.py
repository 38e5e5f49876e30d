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

from tests.dashboard.conftest import Browser
from trivue.paths import REPO_ROOT

AXE = REPO_ROOT / "build" / "dashboard-npm" / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("serious", "critical")


def axe(browser: Browser) -> dict[str, Any]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make dashboard-assets` (npm ci installs axe-core {AXE_VERSION})")
    page = browser.page
    page.add_script_tag(path=str(AXE))
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


def _review_queue(browser: Browser) -> None:
    page = browser.page
    browser.goto("/rappels")
    page.get_by_role("button", name="Simuler").click()
    page.locator("#plan-status").filter(has_text="proposés").wait_for()
    page.get_by_label("Nom de la campagne").fill("Accessibilité")
    page.get_by_role("button", name="Créer la campagne").click()
    page.locator("#queue li").first.wait_for()


STATES: dict[str, Callable[[Browser], None]] = {
    "carte": lambda b: (b.goto("/carte"), map_ready(b)),
    "carte-erreur-verre": lambda b: (b.goto("/carte?category=verre"), map_ready(b)),
    "classement": lambda b: (b.goto("/classement"), b.page.locator("#worst tbody tr").first.wait_for()),
    "rue": _street,
    "flotte": lambda b: (b.goto("/flotte"), b.page.locator("#fleet tbody tr").first.wait_for()),
    "alertes": lambda b: (b.goto("/alertes"), b.page.wait_for_load_state("networkidle")),
    "qualite": lambda b: (b.goto("/qualite"), b.page.wait_for_load_state("networkidle")),
    "rappels": lambda b: (b.goto("/rappels"), b.page.wait_for_load_state("networkidle")),
    "rappels-relecture": _review_queue,
}


def test_login_page_has_no_serious_violation(browser: Browser) -> None:
    browser.goto("/login")
    check(browser, "login")


@pytest.mark.parametrize("state", list(STATES))
def test_every_page_and_state_has_no_serious_violation(browser: Browser, state: str) -> None:
    browser.login()
    STATES[state](browser)
    check(browser, state)
