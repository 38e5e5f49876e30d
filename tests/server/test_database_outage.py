"""What the on-call engineer sees while the database is away (a ``pg_ctlcluster restart``, a failover):
the API answers 503 and says why, the log has one line per refusal or upkeep round, no traceback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from server.periodic import Periodic
from tests.server.conftest import Server
from tests.server.test_metrics_scrape import broken_engine


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def test_the_api_answers_503_without_a_traceback_while_the_database_is_down(
        api: Server, database_url: str, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """It answered 500 "Internal Server Error" and logged a 60-line traceback per request: a
    dashboard polling during a restart filled the journal, and an alert on 5xx could not tell an
    outage of the database from a bug."""
    viewer = api.token("viewer")
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    good = ctx.sessions.kw["bind"]
    ctx.sessions.configure(bind=broken_engine(database_url, tmp_path))
    try:
        with caplog.at_level(logging.WARNING):
            down = api.client.get("/api/streets", headers=viewer)
    finally:
        ctx.sessions.configure(bind=good)
    assert down.status_code == 503, down.text
    assert down.json() == {"detail": "the database is unavailable; try again shortly"}
    assert down.headers["retry-after"] == "10"
    refusals = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(refusals) == 1 and "GET /api/streets" in refusals[0].getMessage(), caplog.text
    assert all(r.exc_info is None for r in caplog.records), caplog.text
    assert api.client.get("/api/streets", headers=viewer).status_code == 200  # back at once


def one_round(name: str, failing: Callable[[], None], caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """The one line a periodic task's failing round logs."""
    started = threading.Event()

    def work() -> None:
        started.set()
        failing()

    task = Periodic(name, 3600, work, first_now=True)
    with caplog.at_level(logging.ERROR, logger="server.periodic"):
        task.start()
        assert started.wait(20)
        task.stop()
    [line] = caplog.records
    return line


def test_upkeep_logs_one_line_per_round_while_the_database_is_down(
        database_url: str, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The rollout check runs every 10 s: each round logged a whole traceback during an outage."""
    engine = broken_engine(database_url, tmp_path)

    def query() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    line = one_round("rollout check", query, caplog)
    assert line.exc_info is None, caplog.text
    assert line.getMessage().startswith("rollout check failed: the database is unavailable ("), line.getMessage()
    assert "\n" not in line.getMessage()


def test_upkeep_still_logs_the_traceback_of_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    def bug() -> None:
        raise KeyError("a bug")

    line = one_round("retention", bug, caplog)
    assert line.exc_info is not None and line.getMessage() == "retention failed"


def test_a_bug_that_sqlite_reports_as_operational_is_no_outage(api: Server, database_url: str) -> None:
    """SQLite says « no such table » (a missing migration, a typo in SQL) through the OperationalError
    an outage raises: answered 503 with one warning, a bug read as an outage and lost its traceback."""
    from sqlalchemy.exc import OperationalError

    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL reports such a bug as ProgrammingError, never taken for an outage")
    with api.client.app.state.ctx.sessions() as session:  # type: ignore[attr-defined]  # a table gone
        session.execute(text("ALTER TABLE streets RENAME TO streets_gone"))
        session.commit()
    with pytest.raises(OperationalError, match="no such table"):  # the test client re-raises a 500
        api.client.get("/api/streets", headers=api.token("viewer"))
