"""SMS held until the sending hours (a Sunday, 3 a.m.): the send says they wait, never that nothing
was approved, on the command line as on the page."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.reminders import sms_hours
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import load_targeting
from server.reminders.households import import_contacts
from server.reminders.models import Item
from server.reminders.plan import make_plan
from tests.server.reminders_city import City, engine_for, seed_city
from tests.server.test_reminders_page import PASSWORD, say, words
from tests.server.test_reminders_page import served as served  # the page's server, a fixture
from trivue.cli import main

TODAY = date(2026, 11, 20)


def test_the_command_says_sms_wait_not_that_nothing_was_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
    for name, value in {
        "TRIVUE_DATA_DIR": str(tmp_path),
        "TRIVUE_DATABASE_URL": city.settings.db_url,
        "TRIVUE_HOUSEHOLD_LEVEL": "true",
        "TRIVUE_LANG": "en",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sms_hours, "sms_allowed", lambda moment, zone: False)  # Sunday
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels:\n  order: [sms, letter]\n  sms: {url: 'http://127.0.0.1:9/send', sender: ORLEANSMET}\n")
    target = f"address:{city.addresses['target'].id}"
    (tmp_path / "contacts.csv").write_text(f"key;phone\n{target};06 98 76 54 32\n")
    assert main(["reminders", "contacts", str(tmp_path / "contacts.csv")]) == 0
    assert main(["reminders", "create", "--until", TODAY.isoformat(), "--name", "Dimanche", "--rules", str(rules)]) == 0
    capsys.readouterr()
    with city.sessions() as session:
        item = session.scalars(select(Item).where(Item.target_key == target)).one()
    assert main(["reminders", "review", str(item.id), "--approve"]) == 0
    capsys.readouterr()
    assert main(["reminders", "send", "--campaign", "1", "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert f"waiting: item {item.id}: SMS are sent Monday to Saturday" in out
    assert "nothing approved" not in out and out.startswith("sent: none\n")


@pytest.fixture
def sms_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's rules (read when the app is made): SMS first, through a gateway nobody calls."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels:\n  order: [sms, letter]\n  sms: {url: 'http://127.0.0.1:9/send', sender: ORLEANSMET}\n")
    monkeypatch.setenv("TRIVUE_REMINDERS_RULES", str(rules))
    return rules


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_page_says_how_many_sms_wait_for_the_sending_hours(
    sms_rules: Path, served: tuple[City, str], chromium: Any, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    from playwright.sync_api import expect

    city, url = served
    t = words(lang)
    monkeypatch.setattr(sms_hours, "sms_allowed", lambda moment, zone: False)  # Sunday
    rules = load_targeting(sms_rules)
    target = f"address:{city.addresses['target'].id}"
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, city.today), "Dimanche", "test", rules)
        session.flush()
        import_contacts(session, f"key;phone\n{target};06 98 76 54 32\n", "test", "contacts.csv")
        item = session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.target_key == target)).one()
        review(session, item.id, Decision(True), "test")
        session.commit()
    page = chromium.new_context(viewport={"width": 1366, "height": 900}, locale=f"{lang}-FR").new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/langue/{lang}?next=/rappels" if lang != "fr" else f"{url}/rappels")
    page.get_by_label(t["login.username"]).fill("gestionnaire")
    page.get_by_label(t["login.password"]).fill(PASSWORD)
    page.get_by_role("button", name=t["login.submit"]).click()
    page.wait_for_url("**/rappels")
    expect(page.locator("#queue li").first).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=t["rem.send"]).click()
    expect(page.locator("#campaign-status")).to_contain_text(say(t["rem.sent_waiting"], lang, waiting=1))
