"""A pilot reached over plain HTTP from another PC of the office network (http://192.168.1.20:8000/).

The session cookie is Secure by default; a browser keeps a Secure cookie only from an https:// page
or from this very machine (localhost, 127.0.0.1, ::1), so there the login answered 200, the browser
dropped the cookie and the user was sent back to the login page with no explanation, while a valid
session key had crossed the network in clear. The login now refuses, saying why and what to do, and
``trivue server`` warns at start-up. The browser's side is ``tests/dashboard/test_login_plain_http.py``.

A script (no ``Origin``) logging in over plain http got a Secure cookie too, which its cookie jar
never sent back: every call after the login answered 401. And the start-up warning fired behind a
TLS reverse proxy on another machine that the server trusts (``FORWARDED_ALLOW_IPS``), where users
are on https. Both now follow the scheme the user is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

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

    def make(base_url: str, proxies: str | None = None, **settings: Any) -> TestClient:
        """A client of the app; with ``proxies``, the app behind uvicorn's ``--proxy-headers`` handling
        as ``trivue server`` runs it, trusting those addresses (``FORWARDED_ALLOW_IPS``)."""
        folder = tmp_path / f"data-{len(opened)}"
        app = create_app(load_settings(env={}, data_dir=folder, ingest_enabled=False, **settings))
        with app.state.ctx.sessions() as db:
            add_user(db, "camille", PASSWORD, "manager")
            db.commit()
        # The test client's address is "testclient": a trusted proxy's, or not.
        served = ProxyHeadersMiddleware(app, trusted_hosts=proxies) if proxies else app
        client = TestClient(served, base_url=base_url)  # type: ignore[arg-type]
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


def test_a_script_on_plain_http_gets_a_cookie_its_jar_sends_back(make_client: Any) -> None:
    """No Origin and no Referer: not a browser (they send Origin on every POST), so the scheme it is
    on is the request's. Over plain http a Secure cookie is one its jar keeps and never sends: the
    login said 200 and every call after it 401. (Scripts should use a bearer token anyway.)"""
    client = make_client(LAN)
    response = login(client, None)
    assert response.status_code == 200 and "secure" not in response.headers["set-cookie"].lower()
    assert client.get("/api/me").status_code == 200


@pytest.mark.parametrize(("base_url", "proxies", "forwarded", "secure"), [
    ("https://trivue.orleans-metropole.fr", None, None, True),  # TLS to the server itself
    (LAN, "testclient", "https", True),  # a TLS proxy the server trusts (FORWARDED_ALLOW_IPS)
    (LAN, "10.0.0.5", "https", False),  # a header from an untrusted address is not believed
    (LAN, "testclient", "http", False),
])
def test_a_script_gets_a_secure_cookie_where_it_is_on_https(make_client: Any, base_url: str, proxies: str | None,
                                                            forwarded: str | None, secure: bool) -> None:
    client = make_client(base_url, proxies)
    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    response = client.post("/api/login", json={"name": "camille", "password": PASSWORD}, headers=headers)
    assert response.status_code == 200, response.text
    assert ("secure" in response.headers["set-cookie"].lower()) is secure


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
    warning = plain_http_warning(load_settings(env={}, data_dir=tmp_path, **settings), "127.0.0.1,::1")
    assert (warning is not None) is warned
    if warning:
        assert "https://" in warning and "cookie_secure: false" in warning and "TRIVUE_COOKIE_SECURE=false" in warning
        assert "FORWARDED_ALLOW_IPS" in warning  # what a TLS proxy on another machine needs


@pytest.mark.parametrize(("proxies", "warned"), [
    ("10.0.0.5", False), ("127.0.0.1, 10.0.0.0/24", False), ("*", False), ("fd00::5", False),
    ("127.0.0.1,::1", True), ("127.0.0.0/8", True), ("localhost", True), ("", True),
])
def test_no_start_up_warning_behind_a_trusted_tls_proxy(tmp_path: Path, proxies: str, warned: bool) -> None:
    """A proxy on another machine named in ``FORWARDED_ALLOW_IPS``: users are on its https://, and the
    server reads the scheme it forwards. Trusting loopback only says nothing of the users."""
    settings = load_settings(env={}, data_dir=tmp_path, host="0.0.0.0")
    assert (plain_http_warning(settings, proxies) is not None) is warned


def test_the_first_refused_login_over_plain_http_is_logged_once(make_client: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Where the start-up warning kept quiet (a trusted proxy, yet a user on http:// from another PC),
    the log still says so, once, when it happens."""
    client = make_client(LAN)
    with caplog.at_level("WARNING", logger="server.web.login"):
        assert login(client, LAN).status_code == 403 and login(client, LAN).status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "server.web.login"]
    assert len(lines) == 1 and "http://192.168.1.20:8000" in lines[0] and "cookie_secure" in lines[0], lines


def test_trivue_server_on_the_office_network_warns_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)  # uvicorn's default: loopback only
    assert main(["server", "--host", "0.0.0.0", "--port", str(free_port()), "--no-ingest"]) == 0
    assert served and served[0]["host"] == "0.0.0.0"
    expected = plain_http_warning(load_settings(env={}, data_dir=tmp_path / "data", host="0.0.0.0",
                                                port=served[0]["port"]))
    lines = [line for line in capsys.readouterr().err.splitlines() if "cookie_secure" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and lines[0].endswith(str(expected)), lines


def test_trivue_server_behind_a_trusted_tls_proxy_does_not_warn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn reads ``FORWARDED_ALLOW_IPS`` (``trivue server`` runs it with ``proxy_headers``): the
    warning reads the same variable."""
    import uvicorn

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5")
    assert main(["server", "--host", "0.0.0.0", "--port", str(free_port()), "--no-ingest"]) == 0
    assert served and served[0]["proxy_headers"] is True and "forwarded_allow_ips" not in served[0]
    assert not [line for line in capsys.readouterr().err.splitlines() if "cookie_secure" in line]
