"""Lifting an opposition on the Rappels page (RGPD art. 21): the household changed its mind, or the agent
typed the wrong key. A server with the household level on (the oppositions name households: the list is
shown only then), a manager opens « Oppositions enregistrées », lifts one after a confirmation: a
dismissed confirmation lifts nothing, an accepted one lifts it, the row goes, the page says from when
reminders resume. Real uvicorn, real SQLite, real Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.audit import AuditEntry
from server.config import load_settings
from server.db import make_engine
from server.migrate import upgrade_database
from server.reminders.households import opt_out
from server.reminders.models import OptOut, upgrade_reminders
from server.web.auth import add_user
from tests.conftest import free_port
from tests.dashboard.seed import PASSWORD


@pytest.fixture
def household_server(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Any]]]:
    port = free_port()
    settings = load_settings(env={}, data_dir=tmp_path, port=port, cookie_secure=False, ingest_enabled=False,
                             household_level=True)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    upgrade_reminders(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        add_user(db, "gestionnaire", PASSWORD, "manager")
        opt_out(db, "address:17", "cli:agent", "courrier du 12/11")
        opt_out(db, "bin:BAC-0042", "cli:agent")
        db.commit()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="uvicorn-optin", daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.1)
        yield f"http://127.0.0.1:{port}", sessions
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


def test_a_manager_lifts_an_opposition_from_the_list(chromium: Any, household_server: tuple[str, Any],
                                                     screenshot_dir: Path) -> None:
    url, sessions = household_server
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.goto(url + "/rappels")
        page.get_by_label("Identifiant").fill("gestionnaire")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/rappels*")
        page.locator("#optouts summary", has_text="Oppositions enregistrées").click()
        rows = page.locator("#optouts-table tbody tr")
        rows.first.wait_for()
        assert rows.count() == 2
        assert page.locator("#optouts-status").inner_text() == "2 oppositions enregistrées."
        row = rows.filter(has_text="address:17")
        assert "courrier du 12/11" in row.inner_text() and "cli:agent" in row.inner_text()
        button = page.get_by_role("button", name="Lever l'opposition de address:17")
        asked: list[str] = []

        def dismiss(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", dismiss)
        button.click()
        page.wait_for_timeout(300)
        assert asked == ["Lever l'opposition de address:17 ? Le foyer sera de nouveau ciblé par les rappels à "
                         "partir de la prochaine campagne."]
        with sessions() as db:
            assert db.get(OptOut, "address:17") is not None  # dismissed: nothing lifted
        page.once("dialog", lambda dialog: dialog.accept())
        button.click()
        status = page.locator("#rights-status")
        status.filter(has_text="recevra de nouveau").wait_for()
        assert status.inner_text() == "address:17 recevra de nouveau des rappels, à partir de la prochaine campagne."
        page.locator("#optouts-status", has_text="1 opposition enregistrée.").wait_for()
        assert rows.count() == 1 and "bin:BAC-0042" in rows.first.inner_text()
        page.screenshot(path=str(screenshot_dir / "rappels-oppositions.png"), full_page=True)
        with sessions() as db:
            assert db.get(OptOut, "address:17") is None
            lifted = db.scalars(select(AuditEntry).where(AuditEntry.action == "reminders.household.opt_in")).all()
            assert [(e.actor, e.target) for e in lifted] == [("user:gestionnaire", "address:17")]
        # The key field too: a key with no opposition is refused, in French, and lifts nothing.
        page.locator("#rights-key").fill("address:18")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#opt-in").click()
        page.locator("#rights-status.error").wait_for()
        assert "aucune opposition enregistrée pour le foyer address:18" in status.inner_text()
    finally:
        context.close()
    assert [e for e in errors if "404" not in e] == []
