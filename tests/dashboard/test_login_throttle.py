"""The login page once the throttle refuses (429), in real Chromium: it says so in French, and when.

It said "Connexion impossible : le serveur ne répond pas." (the answer for a server that is down),
which sends a user to the administrator for what is a wait of a few minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from server.app import create_app
from server.config import load_settings
from server.web.throttle import MAX_FAILURES
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own: locking 127.0.0.1 out of a name must not touch the other tests' server."""
    port = free_port()
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("throttled"), port=port, ingest_enabled=False)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-throttled", daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.1)
        assert thread.is_alive(), "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def test_a_throttled_login_says_so_in_french_and_when(chromium: Any, server_url: str, screenshot_dir: Path) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR")
    from playwright.sync_api import expect

    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{server_url}/login")
        alert = page.get_by_role("alert")
        for attempt in range(MAX_FAILURES + 1):
            page.get_by_label("Identifiant").fill("camille")
            page.get_by_label("Mot de passe").fill(f"mauvais mot de passe {attempt}")
            with page.expect_response("**/api/login") as answer:
                page.get_by_role("button", name="Se connecter").click()
            alert.wait_for(state="visible")
        assert answer.value.status == 429
        expect(alert).to_have_text("Trop d'échecs de connexion : réessayez dans 15 min.")
        page.screenshot(path=str(screenshot_dir / "login-throttled-fr.png"), full_page=True)
    finally:
        context.close()
