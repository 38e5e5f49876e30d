"""RGAA 6.1: every review card of the Rappels page had links « Aperçu du courrier / du courriel / du
SMS », the same words on each card for another item's message: a screen reader's list of links read
« Aperçu du courrier » ten times. Each link's accessible name now starts with its visible words and
names its item (its label and level), in French and in English."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.server.reminders_city import City
from tests.server.test_reminders_page import served
from tests.server.test_reminders_review_card import signed_in

__all__ = ["served"]  # the fixture

VISIBLE = {"fr": ("Aperçu du courrier", "Aperçu du courriel", "Aperçu du SMS"),
           "en": ("Letter preview", "E-mail preview", "SMS preview")}
LEVEL = {"fr": "niveau", "en": "level"}


def preview_names(page: Any) -> list[tuple[str, str, str, str]]:
    """(card title, card id, link text, link accessible name) for each preview link."""
    from playwright.sync_api import expect

    expect(page.locator("#queue a[href*='/preview']").first).to_be_visible()
    found = []
    for card in page.locator("#queue li.rem-item").all():
        title = card.locator("h3").inner_text()
        card_id = card.get_attribute("id") or ""
        for link in card.locator("a[href*='/preview']").all():
            name = page.evaluate("(a) => a.getAttribute('aria-label') || a.textContent", link.element_handle())
            found.append((title, card_id, link.inner_text(), name))
    return found


def check(page: Any, lang: str, items: dict[int, dict[str, Any]]) -> None:
    from playwright.sync_api import expect

    found = preview_names(page)
    assert len(found) > 3, found
    names = [name for *_, name in found]
    assert len(set(names)) == len(names), "two preview links share an accessible name"
    for title, card_id, text, name in found:
        assert text in VISIBLE[lang]
        assert name.startswith(text), (text, name)  # the visible words first (WCAG 2.5.3)
        assert title in name, (title, name)
        item = items[int(card_id.removeprefix("item-"))]
        if item["level"]:
            assert re.search(rf"\b{LEVEL[lang]} {item['level']}\b", name), name
        # The name the browser computes, as a screen reader gets it.
        link = page.locator(f"#{card_id}").get_by_role("link", name=name, exact=True)
        expect(link).to_have_count(1)


def test_each_preview_link_names_its_item_and_level(served: tuple[City, str], chromium: Any,
                                                    tmp_path_factory: Any) -> None:
    from playwright.sync_api import expect

    city, url = served
    page = signed_in(chromium, url)
    page.get_by_label("Nom de la campagne").fill("Décembre")
    page.get_by_role("button", name="Créer la campagne à relire").click()
    expect(page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first).to_contain_text("à relire")
    items = {i["id"]: i for i in page.evaluate("fetch('/api/reminders/campaigns/1').then((r) => r.json())")["items"]}
    assert any(i["level"] for i in items.values())
    check(page, "fr", items)
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    page.screenshot(path=str(shots / "rappels-apercus-fr.png"), full_page=True)

    page.goto(f"{url}/langue/en?next=/rappels")
    page.wait_for_url("**/rappels")
    check(page, "en", items)
