"""Login throttle: guessing and spraying are slowed, a stranger cannot lock a user out, and the counts
live in the database (every server process shares them, a restart keeps them), SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.app import create_app
from server.audit import AuditEntry
from server.config import ServerSettings, load_settings
from server.web.auth import add_user
from server.web.throttle import (
    ADDRESS_MAX_FAILURES,
    LOCKOUT_S,
    MAX_FAILURES,
    USER_MAX_FAILURES,
    Attempt,
    LoginFailure,
    LoginThrottle,
    address_key,
)

PASSWORD = "correct horse battery staple"
OFFICE, ATTACKER, ELSEWHERE = "192.0.2.10", "203.0.113.66", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ServerSettings:
    return load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url, ingest_enabled=False)


@contextmanager
def running(settings: ServerSettings) -> Iterator[FastAPI]:
    """One server process: its own app, engine and throttle, on the test's database."""
    app = create_app(settings)
    try:
        yield app
    finally:
        app.state.ctx.sessions.kw["bind"].dispose()


@pytest.fixture
def app(settings: ServerSettings) -> Iterator[FastAPI]:
    with running(settings) as made:
        with made.state.ctx.sessions() as session:
            add_user(session, "camille", PASSWORD, "manager")
            session.commit()
        yield made


def client(app: Any, address: str) -> TestClient:
    return TestClient(app, base_url="https://trivue.test", client=(address, 40000))


def login(http: TestClient, name: str, password: str = "wrong guess", **headers: str) -> int:
    return http.post("/api/login", json={"name": name, "password": password}, headers=headers).status_code


def guesses(http: TestClient, name: str, count: int) -> list[int]:
    return [login(http, name, f"guess-{i}") for i in range(count)]


def audited(app: FastAPI, action: str) -> list[AuditEntry]:
    with app.state.ctx.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_an_attacker_cannot_lock_out_a_manager_over_http(app: FastAPI) -> None:
    attacker, office = client(app, ATTACKER), client(app, OFFICE)
    assert guesses(attacker, "camille", MAX_FAILURES + 2) == [401] * MAX_FAILURES + [429] * 2
    # Locked means locked for the guesser, even with the right password, whatever the name's case...
    assert login(attacker, "camille", PASSWORD) == 429
    assert login(attacker, "CAMILLE") == 429
    # ...while camille, from the office, gets in.
    assert login(office, "camille", PASSWORD) == 200


def test_two_server_processes_share_the_count(app: FastAPI, settings: ServerSettings) -> None:
    """Each process counted alone: N workers (or API processes behind a load balancer) let N times
    the guesses through."""
    with running(settings) as second:
        first_worker, second_worker = client(app, ATTACKER), client(second, ATTACKER)
        assert guesses(first_worker, "camille", 3) == [401] * 3
        assert guesses(second_worker, "camille", 2) == [401] * 2
        assert login(second_worker, "camille") == 429
        assert login(first_worker, "camille") == 429


def test_a_restart_keeps_the_count(settings: ServerSettings) -> None:
    with running(settings) as before:
        with before.state.ctx.sessions() as session:
            add_user(session, "camille", PASSWORD, "manager")
            session.commit()
        assert guesses(client(before, ATTACKER), "camille", MAX_FAILURES) == [401] * MAX_FAILURES
    with running(settings) as after:
        answer = client(after, ATTACKER).post("/api/login", json={"name": "camille", "password": PASSWORD})
        assert answer.status_code == 429
        assert 0 < int(answer.headers["Retry-After"]) <= LOCKOUT_S


def test_password_spraying_from_one_address_is_slowed_not_other_addresses(app: FastAPI) -> None:
    """One password tried against 20 accounts from one address: each name got one guess, under the
    per-name limits, so nothing slowed it."""
    names = [f"agent{i:02d}" for i in range(20)]
    with app.state.ctx.sessions() as session:
        for name in [*names, "dominique"]:
            add_user(session, name, PASSWORD, "viewer")
        session.commit()
    shared, elsewhere = client(app, ATTACKER), client(app, ELSEWHERE)
    assert login(shared, "dominique", PASSWORD) == 200  # a colleague behind the same NAT, before the spray
    codes = [login(shared, name, "Printemps2026!") for name in names]
    assert codes == [401] * ADDRESS_MAX_FAILURES + [429] * (len(names) - ADDRESS_MAX_FAILURES)
    refused = shared.post("/api/login", json={"name": "agent19", "password": PASSWORD})
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= LOCKOUT_S
    assert login(shared, "dominique", PASSWORD) == 200  # where she logged in before: still in
    assert login(elsewhere, "agent19") == 401  # another address is not slowed...
    assert login(elsewhere, "agent19", PASSWORD) == 200  # ...nor the sprayed accounts themselves
    [locked] = audited(app, "login.locked")
    assert ATTACKER in (locked.detail or "") and "address" in (locked.detail or "")


def test_lock_outs_are_audited_once_not_each_refusal(app: FastAPI) -> None:
    attacker = client(app, ATTACKER)
    guesses(attacker, "camille", MAX_FAILURES + 20)
    [locked] = audited(app, "login.locked")
    assert (locked.actor, locked.target) == ("system", "camille")
    assert ATTACKER in (locked.detail or "")
    assert len(audited(app, "login.failed")) == MAX_FAILURES


def test_the_address_is_the_one_forwarded_by_a_trusted_proxy(app: FastAPI) -> None:
    """Behind a TLS proxy named in FORWARDED_ALLOW_IPS every request comes from the proxy: the
    limits count the client address it forwards (uvicorn's proxy headers), and a client cannot
    escape its count by forging that header itself."""
    behind_proxy = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    proxy = client(behind_proxy, "127.0.0.1")
    forwarded = [login(proxy, f"name{i}", **{"X-Forwarded-For": ATTACKER}) for i in range(ADDRESS_MAX_FAILURES + 1)]
    assert forwarded[-1] == 429
    assert login(proxy, "camille", PASSWORD, **{"X-Forwarded-For": OFFICE}) == 200  # the office, same proxy
    direct = client(behind_proxy, ATTACKER)  # not a trusted proxy: its header is ignored
    assert login(direct, "someone", **{"X-Forwarded-For": ELSEWHERE}) == 429


def guess(throttle: LoginThrottle, app: FastAPI, name: str, address: str, right: bool = False) -> int:
    """One login through the throttle alone (no argon2): 429, 401 or 200."""
    with app.state.ctx.sessions() as db:
        attempt = throttle.attempt(db, name, address)
        if not isinstance(attempt, Attempt):
            return 429
        (throttle.succeeded if right else throttle.failed)(db, attempt)
        db.commit()
        return 200 if right else 401


def test_the_lock_ends_with_the_window_and_retry_after_says_when(app: FastAPI) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(MAX_FAILURES):
        assert guess(throttle, app, "camille", ATTACKER) == 401
        clock.now += timedelta(seconds=60)
    with app.state.ctx.sessions() as db:
        refusal = throttle.attempt(db, "camille", ATTACKER)
    assert not isinstance(refusal, Attempt)
    assert refusal.retry_after_s == LOCKOUT_S - MAX_FAILURES * 60  # the first failure leaves the window then
    clock.now += timedelta(seconds=refusal.retry_after_s - 1)
    assert guess(throttle, app, "camille", ATTACKER) == 429  # refusals did not prolong it, nor end it early
    clock.now += timedelta(seconds=1)
    assert guess(throttle, app, "camille", ATTACKER) == 401


def test_distributed_guessing_hits_the_per_name_limit_except_from_trusted_addresses(app: FastAPI) -> None:
    throttle = LoginThrottle(clock=Clock())
    assert guess(throttle, app, "camille", OFFICE, right=True) == 200  # where camille logged in before
    for i in range(USER_MAX_FAILURES):
        assert guess(throttle, app, "camille", f"198.51.100.{i}") == 401  # one guess per address
    assert guess(throttle, app, "camille", "198.51.100.250") == 429  # a new address: refused
    assert guess(throttle, app, "camille", OFFICE, right=True) == 200  # a known one: still in
    assert guess(throttle, app, "dominique", "198.51.100.250") == 401  # other users are not affected


def test_an_ipv6_sprayer_is_counted_by_its_64_network() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.10") == "192.0.2.10"
    assert address_key("testclient") == "testclient"


def test_the_tables_stay_small(app: FastAPI) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, prune_every_s=0)
    for i in range(60):  # a flood of invented names from many addresses
        guess(throttle, app, f"guess-{i}", f"10.0.{i}.1")
    for _ in range(MAX_FAILURES + 100):  # a lock hammered: the refusals are not counted
        guess(throttle, app, "camille", ATTACKER)
    with app.state.ctx.sessions() as db:
        assert db.scalar(select(func.count()).select_from(LoginFailure)) == 60 + MAX_FAILURES
    clock.now += timedelta(seconds=LOCKOUT_S)
    guess(throttle, app, "camille", ELSEWHERE)
    with app.state.ctx.sessions() as db:
        assert db.scalar(select(func.count()).select_from(LoginFailure)) == 1  # expired failures pruned


def test_a_login_being_checked_holds_no_other_request(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 and the database ran on the server's event loop: while one login was checked
    (tens of milliseconds each, a burst of them from a guesser), every other request waited."""
    import server.web.login as login_module

    checking, release = threading.Event(), threading.Event()
    real = login_module.check_password

    def slow(*args: object) -> object:
        checking.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(login_module, "check_password", slow)
    with client(app, OFFICE) as http:
        answer: dict[str, int] = {}
        pending = threading.Thread(target=lambda: answer.update(code=login(http, "camille", PASSWORD)))
        pending.start()
        try:
            assert checking.wait(10)
            started = time.monotonic()
            assert http.get("/api/health").status_code == 200
            assert time.monotonic() - started < 5, "the health check waited for the login"
        finally:
            release.set()
            pending.join(15)
        assert answer == {"code": 200}


def test_a_burst_of_guesses_sent_at_once_gets_no_more_than_the_limit_checked(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked side by side in threads, every guess of a burst passed the throttle before the
    first failure was counted: the limit holds per attempt, counted before its password is."""
    import server.web.login as login_module

    real, gate = login_module.check_password, threading.Barrier(MAX_FAILURES, timeout=10)

    def slow(*args: object) -> object:
        gate.wait()  # the first MAX_FAILURES guesses are all being checked at once
        return real(*args)

    monkeypatch.setattr(login_module, "check_password", slow)
    with client(app, ATTACKER) as http, ThreadPoolExecutor(3 * MAX_FAILURES) as pool:
        codes = list(pool.map(lambda i: login(http, "camille", f"guess-{i}"), range(3 * MAX_FAILURES)))
    assert sorted(codes) == [401] * MAX_FAILURES + [429] * (2 * MAX_FAILURES)
