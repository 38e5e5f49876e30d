"""The review page before any campaign exists, in headless Chromium: the campaign's actions are disabled,
its links lead nowhere and say so (no ``href="#"``), and the effect panel says when an effect can be read
instead of showing an empty chart box; once a campaign is created, all of it works. Screenshots kept
(rappels-sans-campagne-*.png, rappels-avec-campagne-*.png)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.server.reminders_city import City
from tests.server.test_reminders_page import PASSWORD, served, words

__all__ = ["served"]  # the fresh server fixture, imported for pytest

CAMPAIGN_LINKS = ("#route-sheet", "#effect-csv")
# Every link of the page that a reader could click, with its href (a dead "#" included).
CLICKABLE = """() => [...document.querySelectorAll('main a')].filter((a) => a.offsetParent !== null)
  .map((a) => a.getAttribute('href'))"""


def _login(page: Any, url: str, lang: str, t: dict[str, str]) -> None:
    page.goto(f"{url}/langue/{lang}?next=/rappels" if lang != "fr" else f"{url}/rappels")
    page.get_by_label(t["login.username"]).fill("gestionnaire")
    page.get_by_label(t["login.password"]).fill(PASSWORD)
    page.get_by_role("button", name=t["login.submit"]).click()
    page.wait_for_url("**/rappels")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_no_campaign_disables_its_actions_and_explains_the_effect(
    served: tuple[City, str], chromium: Any, tmp_path_factory: pytest.TempPathFactory, lang: str
) -> None:
    from playwright.sync_api import expect

    _city, url = served
    t = words(lang)
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale=f"{lang}-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, url, lang, t)
    expect(page.locator("#campaign-status")).to_have_text(t["rem.no_campaign"])
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / f"rappels-sans-campagne-{lang}.png"), full_page=True)

    # Nothing to send, retry or print: the buttons are disabled, the links have no href and say so.
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#retry-all")).to_be_disabled()
    for link in CAMPAIGN_LINKS:
        assert page.get_attribute(link, "href") is None, link
        assert page.get_attribute(link, "aria-disabled") == "true", link
    assert "#" not in page.evaluate(CLICKABLE)
    assert float(page.eval_on_selector("#route-sheet", "a => getComputedStyle(a).opacity")) < 1  # looks disabled
    # The false detections' file does not depend on a campaign: it stays a working link.
    assert page.get_attribute("#false-csv", "href") == "/api/reminders/false-detections?format=csv"
    # The effect panel: a sentence, no empty chart box (it was 300 px of nothing), no export.
    expect(page.locator("#effect-none")).to_have_text(t["rem.effect_none"])
    expect(page.locator("#effect-chart")).to_be_hidden()
    expect(page.locator("#effect-csv")).to_be_hidden()

    # A campaign created with the form: selected, and every action works as before.
    page.get_by_role("button", name=t["rem.simulate"]).click()
    page.get_by_label(t["rem.name"]).fill("Novembre")
    page.get_by_role("button", name=t["rem.create"]).click()
    page.locator("#queue li").first.wait_for()
    campaign = page.input_value("#campaign-select")
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#retry-all")).to_be_enabled()
    base = f"/api/reminders/campaigns/{campaign}"
    expect(page.locator("#route-sheet")).to_have_attribute("href", f"{base}/route-sheet.pdf")
    expect(page.locator("#effect-csv")).to_have_attribute("href", f"{base}/effect?format=csv")
    for link in CAMPAIGN_LINKS:
        assert page.get_attribute(link, "aria-disabled") is None, link
        expect(page.locator(link)).to_be_visible()
    assert float(page.eval_on_selector("#route-sheet", "a => getComputedStyle(a).opacity")) == 1
    expect(page.locator("#effect-none")).to_be_hidden()
    expect(page.locator("#effect-verdict")).not_to_be_empty()  # not sent yet: the verdict says so
    assert "#" not in page.evaluate(CLICKABLE)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / f"rappels-avec-campagne-{lang}.png"), full_page=True)
    context.close()
    assert errors == [], errors
