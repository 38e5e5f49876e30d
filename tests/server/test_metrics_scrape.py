"""``/metrics``: a scrape never counts a whole table, and the ingest counters stay readable while the
database is down, to a token checked before the outage only (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select, text

import server.ingest.metrics as metrics_module
from server.db import make_engine
from server.ingest.metrics import stored_rows
from server.ingest.models import DeadLetter, Lift
from tests.conftest import free_port
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.test_api import seed


@pytest.fixture
def api(make_settings: Any, run_server: Any) -> Iterator[Server]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        yield server


def gauge(body: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_scrape_never_counts_every_row_of_a_table(api: Server) -> None:
    """``count(*)`` over the lifts read 100 million rows every 15 s: every read of lifts or dead
    letters a scrape makes is bounded (a LIMIT) or an index lookup (min/max), whatever the size."""
    seed(api, [lift_event() for _ in range(3)])
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not threading.current_thread().name.startswith("trivue-"):  # not the purge or rollouts in the background
            statements.append(" ".join(statement.split()))

    engine = api.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        body = api.client.get("/metrics", headers=api.token("viewer")).text
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert gauge(body, "trivue_lifts") == 3 and gauge(body, "trivue_dead_letters") == 0
    reads = [s for s in statements if re.search(r"\bFROM (lifts|dead_letters)\b", s)]
    assert reads, statements
    unbounded = [s for s in reads if "LIMIT" not in s.upper() and not re.search(r"\b(max|min)\(", s)]
    assert unbounded == [], unbounded


def test_stored_rows_is_exact_when_small_and_an_estimate_when_large(api: Server, monkeypatch: Any) -> None:
    at = datetime.now(UTC) - timedelta(days=1)
    seed(api, [lift_event(at=at + timedelta(seconds=i)) for i in range(30)])
    with api.sessions() as session:
        assert stored_rows(session, Lift.__table__) == 30
        assert stored_rows(session, DeadLetter.__table__) == 0
    monkeypatch.setattr(metrics_module, "EXACT_ROWS_UP_TO", 10)
    with api.sessions() as session, session.begin():
        # The purge goes by started_at, not by id: holes in the ids.
        ids = session.scalars(select(Lift.id).order_by(Lift.id)).all()
        session.execute(delete(Lift).where(Lift.id.in_(ids[5:10])))
    with api.sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE lifts"))
            session.commit()
            assert stored_rows(session, Lift.__table__) == 25  # the statistics, fresh here
        else:
            assert stored_rows(session, Lift.__table__) == 30  # the id span: an upper bound
        assert session.scalar(select(func.count()).select_from(Lift)) == 25


def broken_engine(database_url: str, tmp: Any) -> Any:
    """An engine to the same kind of database, unreachable: what the app meets during an outage."""
    if database_url.startswith("sqlite"):
        return make_engine(f"sqlite:///{tmp / 'gone' / 'trivue.db'}")
    return make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/test")


def test_counters_stay_readable_while_the_database_is_down(api: Server, database_url: str, tmp_path: Any) -> None:
    viewer, other, truck = api.token("viewer"), api.token("admin"), None
    with api.sessions() as session:
        from server.web.auth import create_token
        truck = {"Authorization": f"Bearer {create_token(session, 'truck', 'truck:benne-01', 'benne-01')}"}
        session.commit()
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    assert api.client.get("/metrics", headers=viewer).status_code == 200  # checked while the database is up
    assert api.client.get("/metrics", headers=truck).status_code == 403
    ctx.metrics.inc("trivue_ingest_messages_total", 7, kind="lift")
    good = ctx.sessions.kw["bind"]
    ctx.sessions.configure(bind=broken_engine(database_url, tmp_path))
    try:
        down = api.client.get("/metrics", headers=viewer)
        assert down.status_code == 200, down.text
        assert 'trivue_ingest_messages_total{kind="lift"} 7' in down.text
        assert gauge(down.text, "trivue_database_up") == 0 and gauge(down.text, "trivue_lifts") is None
        # Not open to the world: no token, a token never checked, a truck's, a forged one.
        assert api.client.get("/metrics").status_code == 401
        assert api.client.get("/metrics", headers=other).status_code == 503
        assert api.client.get("/metrics", headers=truck).status_code == 503
        assert api.client.get("/metrics", headers={"Authorization": "Bearer trv_forged"}).status_code == 503
    finally:
        ctx.sessions.configure(bind=good)
    up = api.client.get("/metrics", headers=viewer)
    assert gauge(up.text, "trivue_database_up") == 1 and gauge(up.text, "trivue_lifts") == 0


def test_a_revoked_token_is_not_vouched_for_in_an_outage(api: Server, database_url: str, tmp_path: Any) -> None:
    from server.web.accounts import ApiToken

    viewer = api.token("viewer")
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    assert api.client.get("/metrics", headers=viewer).status_code == 200
    with api.sessions() as session, session.begin():
        session.execute(ApiToken.__table__.update().values(revoked_at=datetime.now(UTC)))
    assert api.client.get("/metrics", headers=viewer).status_code == 401
    good = ctx.sessions.kw["bind"]
    ctx.sessions.configure(bind=broken_engine(database_url, tmp_path))
    try:
        assert api.client.get("/metrics", headers=viewer).status_code == 503
    finally:
        ctx.sessions.configure(bind=good)


def test_dev_mode_scrapes_without_a_token_even_when_the_database_is_down(make_settings: Any, run_server: Any,
                                                                        database_url: str, tmp_path: Any) -> None:
    with run_server(make_settings(ingest_enabled=False, dev=True)) as server:
        ctx = server.client.app.state.ctx  # type: ignore[attr-defined]
        good = ctx.sessions.kw["bind"]
        ctx.sessions.configure(bind=broken_engine(database_url, tmp_path))
        try:
            body = server.client.get("/metrics")
            assert body.status_code == 200 and gauge(body.text, "trivue_database_up") == 0
        finally:
            ctx.sessions.configure(bind=good)
