"""A PostgreSQL host that accepts the connection and never answers: the server gives up after
``CONNECT_TIMEOUT_S`` instead of holding the request (libpq waits forever by default)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from server import db


def test_a_silent_database_host_fails_within_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_S", 2, raising=False)  # raising: absent before the fix
    with socket.socket() as silent:  # the kernel completes the handshake; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = db.make_engine(f"postgresql://trivue@127.0.0.1:{port}/trivue")
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                engine.connect().close()
            except BaseException as error:  # the outcome is what is checked
                outcome.append(error)

        started = time.monotonic()
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(timeout=12)
        assert not worker.is_alive(), "still waiting for a host that never answers"
        assert outcome and isinstance(outcome[0], OperationalError) and "timeout" in str(outcome[0]).lower()
        assert time.monotonic() - started < 8

