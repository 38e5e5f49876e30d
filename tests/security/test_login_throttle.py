"""Login throttle: guessing is slowed, a stranger cannot lock a user out, memory stays bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from server.web.auth import add_user
from server.web.login import LOCKOUT_S, MAX_FAILURES, USER_MAX_FAILURES, LoginThrottle

PASSWORD = "correct horse battery staple"
OFFICE, ATTACKER = "192.0.2.10", "203.0.113.66"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_lock_the_guessers_address_not_the_user() -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(MAX_FAILURES):
        assert not throttle.blocked("camille", ATTACKER)
        throttle.failed("camille", ATTACKER)
    assert throttle.blocked("camille", ATTACKER)
    assert throttle.blocked("CAMILLE", ATTACKER)  # the case of the name does not start a fresh count
    assert not throttle.blocked("camille", OFFICE)  # the real manager still logs in


def test_the_lock_ends_after_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(MAX_FAILURES):
        throttle.failed("camille", ATTACKER)
    clock.now += LOCKOUT_S + 1
    assert not throttle.blocked("camille", ATTACKER)


def test_distributed_guessing_hits_the_per_user_limit_except_from_trusted_addresses() -> None:
    throttle = LoginThrottle(clock=Clock())
    throttle.succeeded("camille", OFFICE)  # where camille logged in before
    for i in range(USER_MAX_FAILURES):
        address = f"198.51.100.{i}"  # one or two guesses per address: under the per-address limit
        assert not throttle.blocked("camille", address)
        throttle.failed("camille", address)
    assert throttle.blocked("camille", "198.51.100.250")  # a new address: refused
    assert not throttle.blocked("camille", OFFICE)  # a known one: still in
    assert not throttle.blocked("dominique", "198.51.100.250")  # other users are not affected


def test_memory_is_bounded_whatever_names_are_tried() -> None:
    throttle = LoginThrottle(clock=Clock(), max_keys=100)
    for i in range(20_000):
        name, address = f"guess-{i}", f"10.0.{i % 256}.{i // 256 % 256}"
        throttle.blocked(name, address)
        throttle.failed(name, address)
        if i % 7 == 0:
            throttle.succeeded(name, address)
    assert len(throttle) <= 3 * 100
    for _ in range(1000):  # one key hammered keeps only what its limit needs
        throttle.failed("camille", ATTACKER)
    assert max(len(d) for d in throttle._pairs.values()) <= MAX_FAILURES
    assert max(len(d) for d in throttle._users.values()) <= USER_MAX_FAILURES


@pytest.fixture
def app(tmp_path: Path) -> Iterator[object]:
    settings = load_settings(env={}, data_dir=tmp_path / "data", ingest_enabled=False)
    app = create_app(settings)
    with app.state.ctx.sessions() as session:
        add_user(session, "camille", PASSWORD, "manager")
        session.commit()
    yield app


def test_an_attacker_cannot_lock_out_a_manager_over_http(app: object) -> None:
    with TestClient(app, base_url="https://trivue.test", client=(ATTACKER, 40000)) as attacker:
        office = TestClient(app, base_url="https://trivue.test", client=(OFFICE, 40001))
        codes = [attacker.post("/api/login", json={"name": "camille", "password": f"guess-{i}"}).status_code
                 for i in range(MAX_FAILURES + 2)]
        assert codes == [401] * MAX_FAILURES + [429] * 2
        # Locked means locked for the guesser, even with the right password...
        assert attacker.post("/api/login", json={"name": "camille", "password": PASSWORD}).status_code == 429
        # ...while camille, from the office, gets in.
        assert office.post("/api/login", json={"name": "camille", "password": PASSWORD}).status_code == 200


def test_a_login_being_checked_holds_no_other_request(app: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 and the database ran on the server's event loop: while one login was checked
    (tens of milliseconds each, a burst of them from a guesser), every other request waited."""
    import server.web.login as login

    checking, release = threading.Event(), threading.Event()
    real = login.check_password

    def slow(*args: object) -> object:
        checking.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(login, "check_password", slow)
    with TestClient(app, base_url="https://trivue.test", client=(OFFICE, 40001)) as client:
        answer: dict[str, int] = {}
        pending = threading.Thread(target=lambda: answer.update(code=client.post(
            "/api/login", json={"name": "camille", "password": PASSWORD}).status_code))
        pending.start()
        try:
            assert checking.wait(10)
            started = time.monotonic()
            assert client.get("/api/health").status_code == 200
            assert time.monotonic() - started < 5, "the health check waited for the login"
        finally:
            release.set()
            pending.join(15)
        assert answer == {"code": 200}


def test_a_burst_of_guesses_sent_at_once_gets_no_more_than_the_limit_checked(app: object,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked side by side in threads, every guess of a burst passed the throttle before the
    first failure was counted: the limit holds per attempt, counted before its password is."""
    import server.web.login as login

    real, gate = login.check_password, threading.Barrier(MAX_FAILURES, timeout=10)

    def slow(*args: object) -> object:
        gate.wait()  # the first MAX_FAILURES guesses are all being checked at once
        return real(*args)

    monkeypatch.setattr(login, "check_password", slow)
    with (TestClient(app, base_url="https://trivue.test", client=(ATTACKER, 40000)) as client,
          ThreadPoolExecutor(3 * MAX_FAILURES) as pool):
        codes = list(pool.map(lambda i: client.post("/api/login", json={"name": "camille",
                                                                     "password": f"guess-{i}"}).status_code,
                              range(3 * MAX_FAILURES)))
    assert sorted(codes) == [401] * MAX_FAILURES + [429] * (2 * MAX_FAILURES)
