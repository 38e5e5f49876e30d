"""The login page of a pilot reached over plain HTTP from another PC, in real Chromium.

Chromium keeps a Secure cookie only from a secure context: https://, or this very machine. Here the
page's name, ``trivue-pilote.lan``, is mapped to 127.0.0.1 by a host-resolver rule, so the browser
talks to the local server over plain HTTP while the page is not a secure context, as from another
PC of the office network. With the default ``cookie_secure: true`` the login used to answer 200, the
browser dropped the cookie and the user landed back on the login page without a word.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.config import load_settings
from server.db import make_engine
from server.migrate import upgrade_database
from server.web.accounts import LoginSession
from server.web.auth import add_user
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

pytestmark = pytest.mark.slow

PASSWORD = "une longue phrase de passe"
LAN_NAME = "trivue-pilote.lan"


@dataclass
class Pilot:
    port: int
    sessions: sessionmaker[Any]

    def url(self, host: str, path: str = "/login") -> str:
        return f"http://{host}:{self.port}{path}"

    def open_sessions(self) -> int:
        with self.sessions() as db:
            return db.scalar(select(func.count()).select_from(LoginSession)) or 0


def _serve(folder: Path, **settings: Any) -> Iterator[Pilot]:
    port = free_port()
    config = load_settings(env={}, data_dir=folder, port=port, ingest_enabled=False, **settings)
    engine = make_engine(config.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        add_user(db, "camille", PASSWORD, "admin")
        db.commit()
    server = uvicorn.Server(uvicorn.Config(create_app(config, engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-pilot", daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.1)
        assert thread.is_alive(), "the server did not start"
    try:
        yield Pilot(port, sessions)
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    """A pilot with the default settings: cookie_secure true."""
    yield from _serve(tmp_path_factory.mktemp("pilot"))


@pytest.fixture(scope="module")
def lan_pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    """A LAN pilot whose administrator turned cookie_secure off, knowingly."""
    yield from _serve(tmp_path_factory.mktemp("lan-pilot"), cookie_secure=False)


@pytest.fixture(scope="module")
def lan_browser(chromium: Any) -> Iterator[Any]:
    """A second Chromium, from the session's Playwright, that resolves LAN_NAME to 127.0.0.1."""
    browser = chromium.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1"])
    yield browser
    browser.close()


@pytest.fixture
def page(lan_browser: Any) -> Iterator[Any]:
    context = lan_browser.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == [], errors


def submit(page: Any) -> None:
    page.get_by_label("Identifiant").fill("camille")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def test_over_plain_http_from_another_pc_the_login_page_says_why_and_what_to_do(
        pilot: Pilot, page: Any, screenshot_dir: Path) -> None:
    page.goto(pilot.url(LAN_NAME, "/carte"))
    page.wait_for_url("**/login?next=%2Fcarte")
    assert page.evaluate("window.isSecureContext") is False  # as from another PC: no https, not localhost
    notice = page.locator("#login-plain-http")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert "https://" in text and "cookie_secure: false" in text and "TRIVUE_COOKIE_SECURE=false" in text
    assert "cookie de session" in text
    # The password is not sent in clear for a login that cannot hold.
    assert page.get_by_role("button", name="Se connecter").is_disabled()
    page.screenshot(path=str(screenshot_dir / "login-plain-http-fr.png"), full_page=True)

    # A page that enabled its button anyway (an old copy in the cache): the server refuses, the page says why.
    page.evaluate("document.querySelector('#login-form button[type=submit]').disabled = false")
    page.evaluate("document.getElementById('login-plain-http').hidden = true")
    with page.expect_response("**/api/login") as answer:
        submit(page)
    assert answer.value.status == 403
    notice.wait_for(state="visible")  # shown by the page's handler of that answer, a moment after it
    assert "cookie" in page.get_by_role("alert").inner_text()
    assert "/login" in page.url and page.context.cookies() == []
    page.screenshot(path=str(screenshot_dir / "login-plain-http-refused-fr.png"), full_page=True)
    assert pilot.open_sessions() == 0


def test_the_notice_in_english(pilot: Pilot, page: Any, screenshot_dir: Path) -> None:
    page.goto(pilot.url(LAN_NAME, "/langue/en?next=/login"))
    notice = page.locator("#login-plain-http")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert "session cookie" in text and "https://" in text and "cookie_secure: false" in text
    page.screenshot(path=str(screenshot_dir / "login-plain-http-en.png"), full_page=True)


def test_on_this_machine_the_default_secure_cookie_is_kept(pilot: Pilot, page: Any) -> None:
    page.goto(pilot.url("127.0.0.1", "/carte"))
    page.wait_for_url("**/login?next=%2Fcarte")
    assert page.locator("#login-plain-http").is_hidden()
    submit(page)
    page.wait_for_url("**/carte")
    assert [c["secure"] for c in page.context.cookies() if c["name"] == "trivue_session"] == [True]


def test_a_lan_pilot_with_cookie_secure_off_logs_in_without_the_notice(lan_pilot: Pilot, page: Any) -> None:
    page.goto(lan_pilot.url(LAN_NAME, "/carte"))
    page.wait_for_url("**/login?next=%2Fcarte")
    assert page.locator("#login-plain-http").is_hidden()
    submit(page)
    page.wait_for_url("**/carte")
    assert [c["secure"] for c in page.context.cookies() if c["name"] == "trivue_session"] == [False]
