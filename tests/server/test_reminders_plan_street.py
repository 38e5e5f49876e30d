"""The plan of one street (the street page's « Préparer une campagne de rappel »): its figures are
the street's, not the city's: messages, households set aside and lifts without a sure household."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.reminders.households import opt_out
from server.streets.models import Street
from server.web.auth import create_token
from tests.server.reminders_city import DIRTY, engine_for, seed_city
from tests.server.test_reminders_page import served  # noqa: F401  (the served page, used by name)

TODAY = date(2026, 11, 20)


def test_the_plan_of_one_street_counts_that_street_only(tmp_path: Path) -> None:
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        clean = city.addresses["clean"]
        with city.sessions() as session:
            for days in (2, 6):  # two poor fixes elsewhere: street-level lifts of another street
                city.lift(session, "elsewhere", (clean.lat, clean.lon), days, DIRTY[1], accuracy=60.0, photo=False)
            opt_out(session, f"address:{city.addresses['target'].id}", "test")  # set aside, dirty street
            session.commit()
            token = create_token(session, "manager", "test-manager")
            session.commit()
        client = TestClient(create_app(city.settings, engine, start_ingest=False))
        headers = {"Authorization": f"Bearer {token}"}
        whole = client.get("/api/reminders/plan", params={"until": TODAY.isoformat()}, headers=headers).json()
        dirty, other = city.streets["dirty"], city.streets["clean"]
        one = client.get(
            "/api/reminders/plan", params={"until": TODAY.isoformat(), "street_id": other}, headers=headers
        ).json()

    assert whole["street_only_lifts"] == 6 + 2 and whole["skipped"]
    # The status line said « 8 levées sans foyer sûr » beside the targeted streets: those of the streets
    # the plan targets are counted apart (the street elsewhere is not targeted).
    targeted = {t["street_id"] for t in whole["targets"] if t["kind"] == "street"}
    assert whole["street_only_targeted"] == (6 if dirty in targeted else 0) + (2 if other in targeted else 0)
    assert one["street_only_targeted"] == (2 if other in targeted else 0)
    assert one["street_only_lifts"] == 2  # the city's 8 were shown for any street
    assert one["skipped"] == []  # the dirty street's opted-out household is not this street's
    assert {t["street_id"] for t in one["targets"]} <= {other}
    assert {t["key"] for t in one["targets"]} == {t["key"] for t in whole["targets"] if t["street_id"] == other}
    assert any(s["street_id"] == dirty for s in whole["skipped"])


STRANGE = "Allée <b>des</b> Chênes & Co"  # OpenStreetMap names are text: markup in one stays text


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_page_of_one_street_names_it(request: pytest.FixtureRequest, chromium: Any, lang: str) -> None:
    """The street page's campaign said « Seulement la rue n° 83 »: its name and commune, as text."""
    from playwright.sync_api import expect

    from tests.server.test_reminders_page import PASSWORD, words

    city, url = request.getfixturevalue("served")
    street_id = city.streets["clean"]
    with city.sessions() as session:
        street = session.get(Street, street_id)
        street.name, commune = STRANGE, street.commune
        session.commit()
    t = words(lang)
    context = chromium.new_context(locale=f"{lang}-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    target = f"/rappels?street_id={street_id}"
    page.goto(f"{url}/langue/{lang}?next={quote(target, safe='')}" if lang != "fr" else f"{url}{target}")
    page.get_by_label(t["login.username"]).fill("gestionnaire")
    page.get_by_label(t["login.password"]).fill(PASSWORD)
    page.get_by_role("button", name=t["login.submit"]).click()
    page.wait_for_url(f"**{target}")
    line = page.locator("#plan-street")
    want = {"fr": f"Seulement la rue {STRANGE} ({commune})", "en": f"Only the street {STRANGE} ({commune})"}[lang]
    expect(line).to_have_text(want)
    assert line.locator("b").count() == 0 and not errors
    context.close()
