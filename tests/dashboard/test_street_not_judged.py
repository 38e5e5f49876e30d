"""A lift the camera could not see (wire 1.4, ``view_unusable``) on the street page: its card says it
was not judged and why, counts in no figure, and offers no overrule (there is no judgement to dispute:
« compte désormais comme conforme » would be false). Before, it looked like any contaminated lift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.dashboard.conftest import Browser
from tests.dashboard.seed import make_event
from vision.rules import SortingRules
from vision.schema import ViewProblem


def test_a_lift_whose_view_was_unusable_says_it_was_not_judged(browser: Browser) -> None:
    server = browser.server
    street = server.city.streets["clean"][1]  # a street whose figures this lift must leave as they are
    point = server.city.point_of[street]
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    # hopper lights out: the detector took a shadow for a glass bottle, which nobody should read as a fact
    event = make_event("benne-86", 86_001, when, point, {"glass": 1}, SortingRules.load()).model_copy(
        update={"view_unusable": ViewProblem.dark})
    assert event.contaminated  # as the truck sent it: what the list's filter selects
    before = server.api(f"/api/streets/{street}")
    server.publish("benne-86/lift", event.to_json())
    server.wait_for(lambda: server.api("/api/lifts", street_id=street, contaminated="true")["items"],
                    "the lift not judged")
    after = server.api(f"/api/streets/{street}")
    assert (after["lifts"], after["contaminated"]) == (before["lifts"], before["contaminated"])

    browser.login(path=f"/rues/{street}")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    card = page.locator("#recent > li", has=page.locator("[data-view-unusable=dark]"))
    assert card.count() == 1
    note = card.locator("[data-view-unusable]")
    assert note.locator("strong").inner_text() == "Levée non jugée : image sombre"
    assert "ne compte dans aucun chiffre" in note.inner_text()
    assert "Détections non retenues : Bouteille, pot ou bocal en verre × 1" in card.locator("figcaption").inner_text()
    assert card.get_by_role("button", name="Contester ce jugement").count() == 0
    card.scroll_into_view_if_needed()
    browser.shot("12b-rue-levee-non-jugee")

    browser.goto(f"/langue/en?next=/rues/{street}")
    page.wait_for_selector("body[data-ready=true]")
    assert card.locator("[data-view-unusable] strong").inner_text() == "Lift not judged: dark picture"
    browser.goto("/langue/fr?next=/carte")
    assert not browser.unexpected_errors()
