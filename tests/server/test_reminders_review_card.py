"""What a manager reads on a review card of the Rappels page: a bin's street (its card said only
« bac BAC-0042 », while the plan said where it stands), and, once an item is rejected, the note
they wrote with the reason (it was stored and shown nowhere on the page)."""

from __future__ import annotations

from typing import Any

from tests.server.reminders_city import City
from tests.server.test_reminders_page import PASSWORD, served

__all__ = ["served"]  # the fixture

NOTE = "sac jaune transparent, pas un sac fermé"


def test_a_card_names_a_bin_s_street_and_keeps_the_rejection_note(served: tuple[City, str], chromium: Any) -> None:
    from playwright.sync_api import expect

    city, url = served
    page = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR").new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/rappels")
    page.get_by_label("Identifiant").fill("gestionnaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/rappels")
    page.get_by_label("Nom de la campagne").fill("Décembre")
    page.get_by_role("button", name="Créer la campagne à relire").click()
    bin_card = page.locator("#queue li:has-text('BAC-0042')").first
    expect(bin_card).to_contain_text("à relire")
    items = page.evaluate("fetch('/api/reminders/campaigns/1').then((r) => r.json())")["items"]
    street = next(i["street"] for i in items if i["key"] == "bin:BAC-0042")
    assert street
    expect(bin_card.locator("h3")).to_contain_text(street)

    target = page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first
    target.get_by_label("Motif du refus").select_option("false_detection")
    target.get_by_label("Commentaire").fill(NOTE)
    target.get_by_role("button", name="Refuser").click()
    expect(target).to_contain_text("refusé")
    expect(target).to_contain_text(NOTE)
    assert "((" not in target.inner_text() and "))" not in target.inner_text()
