"""Accounts as an attacker meets them: look-alike names, passwords the login cannot take, and what a
disable, a new password or a new role does to sessions already open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.config import load_settings
from server.web.auth import (
    MAX_PASSWORD_LENGTH,
    AuthError,
    add_user,
    create_token,
    revoke_token,
    set_disabled,
    set_password,
    set_role,
)
from server.web.deps import SESSION_COOKIE
from server.web.throttle import MAX_FAILURES

PASSWORD = "correct horse battery staple"
ATTACKER = "198.51.100.7"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(env={}, data_dir=tmp_path / "data", ingest_enabled=False)
    with TestClient(create_app(settings), base_url="https://trivue.test", client=(ATTACKER, 40000)) as client:
        yield client


def sessions(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.ctx.sessions()  # type: ignore[attr-defined]


def login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    """The cookie header of a fresh session (the client's own jar stays empty)."""
    response = client.post("/api/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE]}"}


def actions(client: TestClient) -> list[tuple[str, str | None, str | None]]:
    with sessions(client) as session:
        return [(e.action, e.target, e.detail) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


@pytest.mark.parametrize("other", ["alice", "ALICE", "Ａｌｉｃｅ", "ａｌｉｃｅ"])
def test_a_name_differing_only_by_case_or_width_is_refused(client: TestClient, other: str) -> None:
    """'Alice' (admin) and 'alice' read as one person in the audit log, and the login throttle counts
    per lower-cased name: the owner of 'alice' logging in cleared the count of guesses against 'Alice'."""
    with sessions(client) as session:
        add_user(session, "Alice", PASSWORD, "admin")
        with pytest.raises(AuthError, match="too close to the existing 'Alice'"):
            add_user(session, other, PASSWORD + "!", "viewer")
        session.commit()


def test_guesses_against_an_account_are_not_reset_by_another_account_logging_in(client: TestClient) -> None:
    """The throttle bypass the look-alike names allowed, end to end: only one of the two names exists."""
    with sessions(client) as session:
        add_user(session, "Alice", PASSWORD, "admin")
        with pytest.raises(AuthError):
            add_user(session, "alice", "the attacker's own password", "viewer")
        add_user(session, "bob", "bob's own password", "viewer")
        session.commit()
    codes = []
    for round_ in range(3):
        codes += [client.post("/api/login", json={"name": "Alice", "password": f"guess-{round_}-{i}"}).status_code
                  for i in range(MAX_FAILURES - 1)]
        client.post("/api/login", json={"name": "alice", "password": "the attacker's own password"})
        client.cookies.clear()
    # The attempt as 'alice' is one more failure from this address: the lock holds from then on.
    assert codes == [401] * (MAX_FAILURES - 1) + [429] * (len(codes) - MAX_FAILURES + 1)


def test_a_password_longer_than_the_login_accepts_is_refused_when_set(client: TestClient) -> None:
    with sessions(client) as session:
        with pytest.raises(AuthError, match="password too long"):
            add_user(session, "camille", "x" * (MAX_PASSWORD_LENGTH + 1), "manager")
        add_user(session, "camille", "x" * MAX_PASSWORD_LENGTH, "manager")
        with pytest.raises(AuthError, match="password too long"):
            set_password(session, "camille", "y" * (MAX_PASSWORD_LENGTH + 1))
        session.commit()
    login(client, "camille", "x" * MAX_PASSWORD_LENGTH)  # the longest password it takes still logs in


def test_disabling_an_account_ends_its_sessions_and_its_logins(client: TestClient) -> None:
    with sessions(client) as session:
        add_user(session, "camille", PASSWORD, "manager")
        session.commit()
    cookie, other_tab = login(client, "camille"), login(client, "camille")
    assert client.get("/api/lifts", headers=cookie).status_code == 200
    with sessions(client) as session:
        set_disabled(session, "camille", True)
        session.commit()
    for headers in (cookie, other_tab):
        assert client.get("/api/lifts", headers=headers).status_code == 401
    # Refused like a wrong password: the answer does not tell that the account exists.
    refused = client.post("/api/login", json={"name": "camille", "password": PASSWORD})
    unknown = client.post("/api/login", json={"name": "nobody", "password": PASSWORD})
    assert (refused.status_code, refused.json()) == (unknown.status_code, unknown.json()) == (
        401, {"detail": "unknown user or wrong password"})
    with sessions(client) as session:
        set_disabled(session, "camille", False)
        session.commit()
    assert client.get("/api/lifts", headers=login(client, "camille")).status_code == 200
    assert [a for a in actions(client) if a[0].startswith("user.")] == [
        ("user.add", "camille", "role=manager"), ("user.disable", "camille", "2 sessions ended"),
        ("user.enable", "camille", None)]


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(client: TestClient) -> None:
    with sessions(client) as session:
        add_user(session, "camille", PASSWORD, "manager")
        session.commit()
    stolen = login(client, "camille")
    with sessions(client) as session:
        set_password(session, "camille", "a brand new passphrase")
        session.commit()
    assert client.get("/api/lifts", headers=stolen).status_code == 401
    assert client.post("/api/login", json={"name": "camille", "password": PASSWORD}).status_code == 401
    assert client.get("/api/lifts", headers=login(client, "camille", "a brand new passphrase")).status_code == 200
    assert ("user.password", "camille", "1 sessions ended") in actions(client)


def test_a_role_change_applies_to_open_sessions_at_once(client: TestClient) -> None:
    with sessions(client) as session:
        add_user(session, "camille", PASSWORD, "manager")
        session.commit()
    cookie = login(client, "camille")
    assert client.get("/api/lifts", headers=cookie).status_code == 200
    with sessions(client) as session:
        set_role(session, "camille", "viewer")
        with pytest.raises(AuthError, match="unknown role 'truck'"):
            set_role(session, "camille", "truck")
        with pytest.raises(AuthError, match="no user 'nobody'"):
            set_role(session, "nobody", "admin")
        session.commit()
    assert client.get("/api/lifts", headers=cookie).status_code == 403
    assert client.get("/api/me", headers=cookie).json()["role"] == "viewer"
    assert ("user.role", "camille", "manager -> viewer") in actions(client)


def test_a_token_is_revoked_once_and_keeps_its_first_revocation(client: TestClient) -> None:
    with sessions(client) as session:
        token = create_token(session, "viewer", "grafana")
        session.commit()
        revoked = revoke_token(session, 1)
        first = revoked.revoked_at
        session.commit()
        with pytest.raises(AuthError, match="already revoked"):
            revoke_token(session, 1)
        assert revoked.revoked_at == first
    assert client.get("/api/streets", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("name", ["", " grafana", "x" * 65, "graf\nana", "\x1b[31mred"])
def test_a_token_name_is_checked_like_a_user_name(client: TestClient, name: str) -> None:
    """The name goes to the audit log: no control characters, nothing silently cut."""
    with sessions(client) as session, pytest.raises(AuthError, match="invalid token name"):
        create_token(session, "viewer", name)


@pytest.mark.parametrize("name", ["a\u0000b", "camille\n", "\x1b[31mcamille"])
def test_a_login_name_no_account_can_have_is_a_422_on_every_database(tmp_path: Path, database_url: str,
                                                                     name: str) -> None:
    """A NUL in the name reached PostgreSQL, which refuses it in text: a 500 to anyone, unsigned."""
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url, ingest_enabled=False)
    with TestClient(create_app(settings), base_url="https://trivue.test", raise_server_exceptions=False) as client:
        response = client.post("/api/login", json={"name": name, "password": PASSWORD})
        assert (response.status_code, response.json()) == (422, {"detail": "expected name and password"})
        assert client.post("/api/login", json={"name": "nobody", "password": "a\u0000b"}).status_code == 401


def test_another_site_cannot_sign_a_visitor_into_its_own_account(client: TestClient) -> None:
    """Login CSRF: a page elsewhere posting the login form with the attacker's name and password
    signed the visitor in as the attacker (their annotations and reviews then went under it)."""
    with sessions(client) as session:
        add_user(session, "mallory", PASSWORD, "annotator")
        session.commit()
    body = {"name": "mallory", "password": PASSWORD}
    for origin in ("https://evil.example", "null"):
        refused = client.post("/api/login", data=body, headers={"Origin": origin})
        assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies, refused.text
    assert client.post("/api/login", data=body, headers={"Origin": "https://trivue.test"}).status_code == 200
    client.cookies.clear()
    assert client.post("/api/login", json=body).status_code == 200  # scripts send no Origin
    client.cookies.clear()


def test_a_new_login_ends_the_browsers_previous_session(client: TestClient) -> None:
    """The cookie a browser held (seen on a shared kiosk, in a proxy log) stayed a valid session
    after someone else signed in on it."""
    with sessions(client) as session:
        add_user(session, "camille", PASSWORD, "manager")
        add_user(session, "dominique", PASSWORD, "viewer")
        session.commit()
    first = login(client, "camille")
    assert client.get("/api/me", headers=first).json()["name"] == "camille"
    again = client.post("/api/login", json={"name": "dominique", "password": PASSWORD}, headers=first)
    assert again.status_code == 200
    client.cookies.clear()
    assert client.get("/api/me", headers=first).status_code == 401
    second = {"Cookie": f"{SESSION_COOKIE}={again.cookies[SESSION_COOKIE]}"}
    assert client.get("/api/me", headers=second).json()["name"] == "dominique"
