"""What a manager reads on a review card of the Rappels page: a bin's street (its card said only
« bac BAC-0042 », while the plan said where it stands), and, once an item is rejected, the note
they wrote with the reason (it was stored and shown nowhere on the page)."""

from __future__ import annotations

from typing import Any

from tests.server.reminders_city import City
from tests.server.test_reminders_page import PASSWORD, served

__all__ = ["served"]  # the fixture

NOTE = "sac jaune transparent, pas un sac fermé"


def signed_in(chromium: Any, url: str) -> Any:
    """The Rappels page, the manager signed in (French)."""
    page = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR").new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/rappels")
    page.get_by_label("Identifiant").fill("gestionnaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/rappels")
    return page


def test_a_card_names_a_bin_s_street_and_keeps_the_rejection_note(served: tuple[City, str], chromium: Any) -> None:
    from playwright.sync_api import expect

    city, url = served
    page = signed_in(chromium, url)
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


MESSAGE_ID = "<20261206.R1-9@trivue.example>"


def test_cards_and_the_send_confirmation_say_what_a_manager_needs(served: tuple[City, str], chromium: Any) -> None:
    """A rejected card offered the previews of a message that will never go; a sent e-mail's card showed
    its raw Message-ID; the send confirmation did not say how many messages go by each channel. And
    the page's counts agree with their noun (« 0 levée », « 2 levées »; "0 lifts", "1 lift")."""
    from playwright.sync_api import expect
    from sqlalchemy import select

    from server.db import utcnow
    from server.reminders.models import Item

    city, url = served
    page = signed_in(chromium, url)
    assert [page.evaluate(f"Trivue.tn('rem.n_lifts', {{ n: {n} }})") for n in (0, 1, 2, 1250)] == [
        "0 levée", "1 levée", "2 levées", "1\u202f250 levées"]
    page.get_by_label("Nom de la campagne").fill("Décembre")
    page.get_by_role("button", name="Créer la campagne à relire").click()
    target = page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first
    expect(target).to_contain_text("à relire")
    with city.sessions() as session:
        items = list(session.scalars(select(Item).where(Item.campaign_id == 1).order_by(Item.id)))
        mailed = next(i for i in items if i.kind == "household" and i.address_id != city.addresses["target"].id)
        mailed.status, mailed.channel, mailed.sent_at = "sent", "email", utcnow()
        mailed.send_detail = mailed.message_id = MESSAGE_ID
        others = [i.id for i in items if i.status == "pending" and i.address_id != city.addresses["target"].id]
        session.commit()
    for item_id in others:
        page.evaluate(f"""fetch('/api/reminders/items/{item_id}/review', {{method: 'POST',
            headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{decision: 'approve'}})}})""")
    target.get_by_label("Motif du refus").select_option("false_detection")
    target.get_by_role("button", name="Refuser").click()
    expect(target).to_contain_text("refusé")
    expect(target.get_by_role("link", name="Aperçu du courrier")).to_have_count(0)
    mailed_card = page.locator(f"#item-{mailed.id}")
    expect(mailed_card).to_contain_text("envoyé — courriel")
    assert "trivue.example" not in mailed_card.inner_text()

    approved = [i for i in page.evaluate("fetch('/api/reminders/campaigns/1').then((r) => r.json())")["items"]
                if i["status"] == "approved"]
    assert approved
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Envoyer les messages approuvés").click()
    expect(page.locator("#campaign-status")).not_to_contain_text("Envoi en cours")
    assert asked, "no confirmation"
    by_channel: dict[str, int] = {}
    for item in approved:
        by_channel[item["planned_channel"] or "none"] = by_channel.get(item["planned_channel"] or "none", 0) + 1
    words = {"letter": "courrier", "print": "avis imprimé", "email": "courriel", "sms": "SMS", "none": "coordonnée"}
    assert f"{len(approved)} message" in asked[0], asked
    for channel, n in by_channel.items():
        assert f"{n} " in asked[0] and words[channel] in asked[0], (channel, asked)
    assert "(s)" not in asked[0]
    assert ("Hors des heures d'envoi des SMS, les SMS attendront" in asked[0]) == ("sms" in by_channel), asked

    def with_sms(route: Any) -> None:  # the same campaign, one approved SMS more
        body = route.fetch().json()
        body["approved_channels"] = {**body.get("approved_channels", {}), "sms": 1}
        route.fulfill(json=body)

    page.route("**/api/reminders/campaigns/1", with_sms)
    page.reload()
    expect(page.locator(f"#item-{mailed.id}")).to_be_visible()
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Envoyer les messages approuvés").click()
    page.wait_for_timeout(300)
    assert len(asked) == 2 and "1 par SMS" in asked[1], asked
    assert "Hors des heures d'envoi des SMS, les SMS attendront la prochaine plage d'envoi" in asked[1], asked
    page.unroute("**/api/reminders/campaigns/1")

    page.goto(f"{url}/langue/en?next=/rappels")
    page.wait_for_url("**/rappels")
    assert [page.evaluate(f"Trivue.tn('rem.n_lifts', {{ n: {n} }})") for n in (0, 1, 2)] == [
        "0 lifts", "1 lift", "2 lifts"]
