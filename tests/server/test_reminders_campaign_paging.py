"""``GET /api/reminders/campaigns`` pages as ``/api/lifts`` does (``limit``, default 100 and at most
1,000, and ``cursor``/``next_cursor``): it returned every campaign ever made, each one's counts
recomputed. The Rappels page shows the newest and reaches the older ones with « Campagnes plus
anciennes » (screenshot kept: rappels-campagnes-anciennes.png)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.reminders.models import PENDING, SENT, Campaign, Item
from tests.server.reminders_city import City, engine_for, seed_city
from tests.server.test_reminders_no_campaign import _login
from tests.server.test_reminders_page import served, words

__all__ = ["served"]  # the page's server fixture, imported for pytest

TODAY = date(2026, 11, 20)


def add_campaigns(session: Session, count: int) -> list[int]:
    """``count`` campaigns, each with one pending item and (every other one) one sent: their ids."""
    ids = []
    for n in range(count):
        campaign = Campaign(name=f"Campagne {n + 1}", created_by="test", since=TODAY, until=TODAY, rules={})
        session.add(campaign)
        session.flush()
        for status in (PENDING, SENT)[: 1 + n % 2]:
            session.add(Item(campaign_id=campaign.id, kind="street", level=1, target_key=f"street:{n}", lifts=1,
                             contaminated=1, categories={}, event_ids=[], reason="test", status=status))
        ids.append(campaign.id)
    session.commit()
    return ids


def test_campaigns_come_a_page_at_a_time_newest_first(tmp_path: Path) -> None:
    from server.app import create_app
    from server.web.auth import create_token

    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        client = TestClient(create_app(city.settings, engine, start_ingest=False))
        with city.sessions() as session:
            manager = {"Authorization": f"Bearer {create_token(session, 'manager', 'test-manager')}"}
            session.commit()
        assert client.get("/api/reminders/campaigns", headers=manager).json() == {"items": [], "next_cursor": None}
        with city.sessions() as session:
            ids = add_campaigns(session, 5)
        seen, cursor, pages = [], None, 0
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/reminders/campaigns", params=params, headers=manager).json()
            seen += page["items"]
            pages += 1
            if (cursor := page["next_cursor"]) is None:
                break
        assert pages == 3 and [c["id"] for c in seen] == ids[::-1], "every campaign once, newest first"
        by_id = {c["id"]: c for c in seen}
        assert by_id[ids[0]]["items"] == {"pending": 1} and by_id[ids[1]]["items"] == {"pending": 1, "sent": 1}
        whole = client.get("/api/reminders/campaigns", headers=manager).json()  # default: 100
        assert [c["id"] for c in whole["items"]] == ids[::-1] and whole["next_cursor"] is None
        for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "abc"}, {"cursor": "0"}):
            answer = client.get("/api/reminders/campaigns", params=bad, headers=manager)
            assert answer.status_code == 422 and next(iter(bad)) in answer.text, (bad, answer.text)


@pytest.mark.parametrize("lang", ["fr"])
def test_the_page_reaches_older_campaigns(served: tuple[City, str], chromium: Any,
                                          tmp_path_factory: pytest.TempPathFactory, lang: str) -> None:
    from playwright.sync_api import expect

    city, url = served
    with city.sessions() as session:
        ids = add_campaigns(session, 101)  # one more than a page
    t = words(lang)
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale=f"{lang}-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, url, lang, t)
    options = page.locator("#campaign-select option")
    expect(options).to_have_count(100)
    assert page.input_value("#campaign-select") == str(ids[-1]), "the newest is shown first"
    more = page.get_by_role("button", name=t["rem.campaigns_more"])
    expect(more).to_be_visible()
    page.screenshot(path=str(shots / "rappels-campagnes-anciennes.png"))
    more.click()
    expect(options).to_have_count(101)
    expect(more).to_be_hidden()
    assert page.input_value("#campaign-select") == str(ids[-1]), "the campaign shown stays chosen"
    page.select_option("#campaign-select", str(ids[0]))
    expect(page.locator("#campaign-status")).to_contain_text("Campagne 1")
    assert not errors, errors
    context.close()
