"""The top bar on a laptop: an admin's eight pages, the language link and who is signed in wrapped it
onto two lines below ~1,500 px, and the demo's manager's seven pages below ~1,320 px. The admin's
back-office pages now fold under one « Administration » disclosure button (base.html, app.js); the
other roles keep their pages, flat, in a tighter bar.

Each test failed before its fix. Screenshots at 1,280, 1,366, 1,440, 375 and 320 px go to the
screenshot folder (``topbar-<user>-<width>``).
"""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import Browser
from tests.dashboard.test_accessibility import BLOCKING, FOCUSED, WCAG_TAGS, axe, describe, tab_until

pytestmark = pytest.mark.slow

ADMIN_GROUP = ["Flotte", "Qualité des données", "Annotation", "Journal d'audit"]
MENUS = {  # every page each role had in its menu before the group, in the menu's order
    "administratrice": ["Carte", "Classement", "Alertes", "Rappels", *ADMIN_GROUP],
    "gestionnaire": ["Carte", "Classement", "Flotte", "Alertes", "Qualité des données", "Annotation", "Rappels"],
    "lecteur": ["Carte", "Classement", "Flotte", "Qualité des données"],  # alerts: lift by lift, managers
}
# The vertical middle of every visible thing of the bar: one line when they are all alike.
ROWS = """() => [...document.querySelectorAll('.topbar .brand, .topbar nav .nav > li, .topbar-tools > *')]
  .filter((e) => e.getClientRects().length).map((e) => { const r = e.getBoundingClientRect();
    return Math.round(r.top + r.height / 2); })"""
TOGGLE = "nav button[aria-controls=nav-admin]"
AXE_ON_THE_BAR = (
    "tags => axe.run('.topbar', {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations', 'incomplete']})"
)


def menu(browser: Browser) -> list[str]:
    return [text.strip() for text in browser.page.locator("nav .nav a").all_text_contents()]


def group_state(browser: Browser) -> tuple[str | None, bool]:
    page = browser.page
    return page.locator(TOGGLE).get_attribute("aria-expanded"), page.locator("#nav-admin").is_visible()


@pytest.mark.parametrize("user", list(MENUS))
def test_the_top_bar_is_one_line_on_a_laptop_and_every_role_keeps_its_pages(browser: Browser, user: str) -> None:
    browser.login(user, "/classement")
    page = browser.page
    page.wait_for_load_state("networkidle")  # who is signed in: written by app.js, it takes room
    assert menu(browser) == MENUS[user]
    assert page.locator(TOGGLE).count() == (user == "administratrice")  # the others keep a flat menu
    rows = {}
    for width in (1440, 1366, 1280, 1263):  # 1,263: a 1,280 px screen less a classic 17 px scrollbar
        page.set_viewport_size({"width": width, "height": 860})
        middles = page.evaluate(ROWS)
        if max(middles) - min(middles) > 4:
            rows[width] = (middles, page.evaluate("document.querySelector('.topbar').offsetHeight"))
        if width != 1263:
            browser.shot(f"topbar-{user}-{width}")
    assert rows == {}, f"{user}: the top bar takes more than one line (middles, height): {rows}"
    for width in (375, 320):  # phones: the bar wraps as before, the page does not scroll sideways
        page.set_viewport_size({"width": width, "height": 700})
        if user == "administratrice":
            if group_state(browser)[0] == "false":
                page.locator(TOGGLE).click()  # open: the list must fit the phone too
            assert group_state(browser) == ("true", True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        browser.shot(f"topbar-{user}-{width}")


def test_the_administration_group_opens_and_closes_by_keyboard_and_mouse(browser: Browser) -> None:
    browser.login("administratrice", "/journal")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    toggle = page.locator(TOGGLE)
    # The current page sits in the closed group: its link keeps aria-current, the button says so too.
    assert page.locator("nav a[aria-current=page]").all_text_contents() == ["Journal d'audit"]
    assert toggle.get_attribute("aria-current") == "true" and group_state(browser) == ("false", False)
    assert toggle.inner_text().strip() == "Administration"

    page.keyboard.press("Tab")  # the skip link
    visited = tab_until(browser, lambda f: f["tag"] == "button" and f["text"] == "Administration")
    assert "/flotte" not in [v["href"] for v in visited]  # closed: its links are out of the tab order
    page.keyboard.press("Enter")
    assert group_state(browser) == ("true", True)
    inside = [stop["href"] for stop in tab_until(browser, lambda f: f["href"] == "/journal", limit=4)]
    assert inside == ["/flotte", "/qualite", "/annotation", "/journal"]
    page.keyboard.press("Escape")  # closes, and the focus goes back to the button
    assert group_state(browser) == ("false", False)
    assert page.evaluate(FOCUSED)["text"] == "Administration"
    page.keyboard.press("Space")
    assert group_state(browser) == ("true", True)
    # axe on the open list (the closed one: test_accessibility's "journal"), the bar only: the page's
    # texts under the list are "for review" to axe, their background hidden by the list.
    axe(browser)  # injects axe-core
    result = page.evaluate(AXE_ON_THE_BAR, WCAG_TAGS)
    assert [v for v in result["violations"] if v["impact"] in BLOCKING] == [], describe(result["violations"])
    assert result["incomplete"] == [], describe(result["incomplete"])
    browser.shot("topbar-administration-clavier")
    for _ in range(5):  # past its last link, out of the group: it closes behind the focus
        page.keyboard.press("Tab")
    assert group_state(browser) == ("false", False)

    toggle.click()
    assert group_state(browser) == ("true", True)
    browser.shot("topbar-administration-souris")
    page.mouse.click(1200, 600)  # a click elsewhere on the page closes it
    assert group_state(browser) == ("false", False)
    toggle.click()
    page.locator("#nav-admin a", has_text="Annotation").click()
    page.wait_for_url("**/annotation")
    assert page.locator("nav a[aria-current=page]").all_text_contents() == ["Annotation"]
    assert page.locator(TOGGLE).get_attribute("aria-current") == "true"
    browser.goto("/alertes")  # a page outside the group: the button is not marked
    assert page.locator("nav a[aria-current=page]").all_text_contents() == ["Alertes"]
    assert page.locator(TOGGLE).get_attribute("aria-current") is None
