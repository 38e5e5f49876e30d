"""A pilot reached over plain HTTP from another PC of the office network (http://192.168.1.20:8000/).

The session cookie is Secure by default; a browser keeps a Secure cookie only from an https:// page
or from this very machine (localhost, 127.0.0.1, ::1), so there the login answered 200, the browser
dropped the cookie and the user was sent back to the login page with no explanation, while a valid
session key had crossed the network in clear. The login now refuses, saying why and what to do, and
``trivue server`` warns at start-up. The browser's side is ``tests/dashboard/test_login_plain_http.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.audit import AuditEntry
from server.config import load_settings
from server.web.accounts import LoginSession
from server.web.auth import add_user
from server.web.login import PLAIN_HTTP_REFUSAL, loopback_host, plain_http_warning
from tests.conftest import free_port
from trivue.cli import main

PASSWORD = "correct horse battery staple"
LAN = "http://192.168.1.20:8000"


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(base_url: str, **settings: Any) -> TestClient:
        folder = tmp_path / f"data-{len(opened)}"
        app = create_app(load_settings(env={}, data_dir=folder, ingest_enabled=False, **settings))
        with app.state.ctx.sessions() as db:
            add_user(db, "camille", PASSWORD, "manager")
            db.commit()
        client = TestClient(app, base_url=base_url)
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def login(client: TestClient, origin: str | None) -> Any:
    headers = {"Origin": origin} if origin else {}
    return client.post("/api/login", json={"name": "camille", "password": PASSWORD}, headers=headers)


def test_a_browser_on_plain_http_from_another_pc_is_told_why_and_opens_no_session(make_client: Any) -> None:
    client = make_client(LAN)
    response = login(client, LAN)
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith(PLAIN_HTTP_REFUSAL)
    assert "https://" in detail and "cookie_secure: false" in detail and "TRIVUE_COOKIE_SECURE=false" in detail
    # No key sent in clear for the browser to drop (and a sniffer to keep), nothing counted or audited as a login.
    assert "set-cookie" not in response.headers
    with client.app.state.ctx.sessions() as db:  # type: ignore[attr-defined]
        assert db.scalar(select(func.count()).select_from(LoginSession)) == 0
        assert not [a for a in db.scalars(select(AuditEntry.action)) if a.startswith("login")]


def test_the_referer_tells_the_same_when_a_browser_sends_no_origin(make_client: Any) -> None:
    client = make_client(LAN)
    response = client.post("/api/login", json={"name": "camille", "password": PASSWORD},
                           headers={"Referer": f"{LAN}/login?next=%2Fcarte"})
    assert response.status_code == 403 and response.json()["detail"].startswith(PLAIN_HTTP_REFUSAL)


@pytest.mark.parametrize("origin", [
    "https://trivue.orleans-metropole.fr",  # behind the TLS reverse proxy: what the default is for
    "https://192.168.1.20:8443",
    "http://localhost:8000", "http://127.0.0.1:8000", "http://127.0.0.2:8000", "http://[::1]:8000",
    "http://pilote.localhost:8000",  # browsers treat these as secure contexts and keep Secure cookies
])
def test_https_and_this_machine_keep_the_secure_cookie(make_client: Any, origin: str) -> None:
    response = login(make_client(origin), origin)
    assert response.status_code == 200, response.text
    assert "secure" in response.headers["set-cookie"].lower()


def test_a_lan_pilot_that_turned_cookie_secure_off_logs_in(make_client: Any) -> None:
    response = login(make_client(LAN, cookie_secure=False), LAN)
    assert response.status_code == 200, response.text
    assert "secure" not in response.headers["set-cookie"].lower()


def test_a_script_without_origin_is_not_second_guessed(make_client: Any) -> None:
    """No Origin and no Referer: not a browser (they send Origin on every POST). Its own cookie jar
    decides; scripts should use a bearer token anyway (``trivue tokens create``)."""
    response = login(make_client(LAN), None)
    assert response.status_code == 200 and "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("pilote.localhost", True), ("127.0.0.1", True),
    ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("trivue.lan", False), ("", False),
    ("localhost.evil.example", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert loopback_host(host) is loopback


@pytest.mark.parametrize(("settings", "warned"), [
    ({"host": "0.0.0.0"}, True), ({"host": "192.168.1.20"}, True), ({"host": "::"}, True),
    ({"host": "127.0.0.1"}, False), ({"host": "localhost"}, False), ({"host": "::1"}, False),
    ({"host": "0.0.0.0", "cookie_secure": False}, False),
    ({"host": "0.0.0.0", "dev": True}, False),  # dev mode sends no Secure cookie (and warns louder)
])
def test_start_up_warning(tmp_path: Path, settings: dict[str, Any], warned: bool) -> None:
    warning = plain_http_warning(load_settings(env={}, data_dir=tmp_path, **settings))
    assert (warning is not None) is warned
    if warning:
        assert "https://" in warning and "cookie_secure: false" in warning and "TRIVUE_COOKIE_SECURE=false" in warning


def test_trivue_server_on_the_office_network_warns_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    assert main(["server", "--host", "0.0.0.0", "--port", str(free_port()), "--no-ingest"]) == 0
    assert served and served[0]["host"] == "0.0.0.0"
    expected = plain_http_warning(load_settings(env={}, data_dir=tmp_path / "data", host="0.0.0.0",
                                                port=served[0]["port"]))
    lines = [line for line in capsys.readouterr().err.splitlines() if "cookie_secure" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and lines[0].endswith(str(expected)), lines
