"""*Qualité des données* names each dead letter's reason in the reader's language, says what to do
about it, and keeps its code in view (``trivue dead-letters list --reason`` and the API filter on it).
Before, the page showed the bare codes: ``unknown_stream``, ``bad_jpeg``..."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from server.ingest.models import DeadLetter
from server.web.dashboard import TEMPLATES_DIR
from tests.dashboard.conftest import Browser
from tests.dashboard.test_rgaa import english

pytestmark = pytest.mark.slow

REASONS = ("unknown_stream", "bad_jpeg", "store_error")


def _letters(browser: Browser) -> None:
    server = browser.server
    with server.sessions() as db:
        for reason in REASONS:
            db.add(DeadLetter(received_at=datetime.now(UTC), topic=f"{server.settings.topic_prefix}/benne-02/lift",
                              truck_id="benne-02", reason=reason, detail=f"détail {uuid.uuid4().hex[:6]}",
                              payload=b"{}", payload_size=2))
        db.commit()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_dead_letter_reasons_are_labelled_with_what_to_do_and_their_code(browser: Browser, lang: str) -> None:
    words = json.loads((TEMPLATES_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    _letters(browser)
    browser.login(path="/qualite")
    page = browser.page
    if lang == "en":
        english(browser)
        browser.goto("/qualite")
    page.wait_for_selector("body[data-ready=true]")
    counts = browser.server.api("/api/dead-letters", limit=1)["counts"]
    rows = page.locator("#dead-reasons tbody tr")
    assert rows.count() == len(counts)
    for reason in REASONS:
        row = page.locator(f"#dead-reasons tr[data-reason={reason}]")
        label, help_ = words[f"dead.reason.{reason}"], words[f"dead.help.{reason}"]
        assert row.locator("td.reason strong").inner_text() == label
        assert row.locator("td.reason code").inner_text() == reason  # the CLI's --reason
        assert row.locator("td.num").inner_text().replace("\u202f", "") == str(counts[reason])
        assert row.locator("td.help").inner_text() == help_
        # Each letter names its reason in words too, its code and detail beside them.
        letter = page.locator("#dead-letters tbody tr", has=page.locator("code", has_text=reason)).first
        assert letter.locator("td.reason strong").inner_text() == label
        assert letter.locator("td.reason strong").get_attribute("title") == help_
        assert letter.locator("td.reason .detail").inner_text().startswith("détail ")
    # No code is left without its words.
    bare = page.locator("#dead-letters td.reason:not(:has(strong)), #dead-reasons td.reason:not(:has(strong))")
    assert bare.count() == 0
    # The list's title counts the messages it shows: « Les 50 derniers » over three was false.
    shown = page.locator("#dead-letters tbody tr").count()
    assert 3 <= shown <= 50
    assert page.locator("#dead-newest-title").inner_text() == (
        f"Les {shown} derniers" if lang == "fr" else f"The latest {shown}")
    page.locator("#dead-title").scroll_into_view_if_needed()
    browser.shot(f"quality-dead-reasons-{lang}")
