"""The live alert stream when lifts commit out of id order.

On PostgreSQL a lift takes its id from a sequence when it is inserted, and becomes visible when its
transaction commits: with two ingest workers on one shared subscription (or an ingest and a
``trivue dead-letters replay``), a batch that took ids 100-199 can commit after one that took
200-299. A stream that had already sent 250 must still send the alerts of 100-199.
SQLite takes one writer at a time, so its ids always commit in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.config import ServerSettings
from server.ingest.aggregates import lift_row
from server.ingest.models import Lift
from tests.conftest import BrokerAddress, free_port
from tests.server.conftest import publish, wait_for
from tests.server.events import lift_event


def next_alerts(response: Iterator[str], count: int, within: float) -> list[dict[str, Any]]:
    """Up to ``count`` alert events from an SSE line iterator, giving up ``within`` seconds from now
    (checked at each line: the server's pings arrive every 15 s)."""
    deadline, found, current = time.monotonic() + within, [], {}
    for line in response:
        if not line:
            if current.get("event") == "alert":
                found.append({"id": int(current["id"]), **json.loads(current["data"])})
                if len(found) == count:
                    break
            current = {}
        else:
            field, _, value = line.partition(":")
            current[field] = value.strip()
        if time.monotonic() > deadline:
            break
    return found


@pytest.fixture
def served(make_settings: Callable[..., ServerSettings], database_url: str,
           mqtt_broker: BrokerAddress) -> Iterator[tuple[str, Any, BrokerAddress]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes one writer at a time: its lift ids commit in order")
    settings = make_settings(dev=True, port=free_port())
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the server to start")
        assert app.state.ctx.ingest.wait_connected(10)
        yield f"http://127.0.0.1:{settings.port}", app.state.ctx, mqtt_broker
    finally:
        server.should_exit = True
        thread.join(15)


def test_an_alert_committed_after_a_later_one_is_still_streamed(served: tuple[str, Any, BrokerAddress]) -> None:
    url, ctx, broker = served
    settings = ctx.settings
    now = datetime.now(UTC)
    # Another writer's lift (the row alone: its aggregate rows would make the ingest wait for its
    # commit), inserted first, so with the lower id, and committed last.
    early = lift_event("benne-11", stream="glass", counts={"battery": 1}, at=now - timedelta(days=1))
    late = lift_event("benne-12", counts={"gas_cylinder": 1}, at=now)
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        cursor = client.get("/api/alerts").json()["cursor"]
        with client.stream("GET", "/api/alerts/stream", params={"after": cursor}) as response:
            lines = response.iter_lines()
            with ctx.sessions() as other, other.begin():
                row = lift_row(early, now, settings.zone, None)
                other.execute(Lift.__table__.insert(), [{c.name: row[c.name] for c in Lift.__table__.columns
                                                         if c.name in row}])
                publish(broker, [(f"{settings.topic_prefix}/benne-12/lift", late.to_json())])
                first = next_alerts(lines, 1, within=15)
                assert [a["event_id"] for a in first] == [str(late.event_id)]
            # ``other`` commits here, its lift id below the one already streamed.
            second = next_alerts(lines, 1, within=20)
    assert [a["event_id"] for a in second] == [str(early.event_id)], "the alert committed late was never sent"
    assert second[0]["id"] < first[0]["id"]


def test_a_page_loaded_between_two_commits_out_of_order_still_gets_the_first_one(
        served: tuple[str, Any, BrokerAddress]) -> None:
    """The page's starting cursor (``/api/alerts``) was the newest lift id: an alert inserted before it
    by another writer and committed after the page loaded was never streamed to that page."""
    url, ctx, broker = served
    settings = ctx.settings
    now = datetime.now(UTC)
    early = lift_event("benne-13", counts={"battery": 1}, at=now - timedelta(minutes=3))
    late = lift_event("benne-14", counts={"gas_cylinder": 1}, at=now)
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        with ctx.sessions() as other, other.begin():
            row = lift_row(early, now, settings.zone, None)
            other.execute(Lift.__table__.insert(), [{c.name: row[c.name] for c in Lift.__table__.columns
                                                     if c.name in row}])
            publish(broker, [(f"{settings.topic_prefix}/benne-14/lift", late.to_json())])
            wait_for(lambda: str(late.event_id) in {a["event_id"] for a in client.get("/api/alerts").json()["items"]},
                     "the later alert stored")
            page = client.get("/api/alerts").json()  # the page loads now
        # ``other`` has committed: its lift id is below the newest one the page was shown.
        with client.stream("GET", "/api/alerts/stream", params={"after": page["cursor"]}) as response:
            streamed = next_alerts(response.iter_lines(), 2, within=20)
    ids = [a["event_id"] for a in streamed]
    assert str(early.event_id) in ids, "the alert committed after the page loaded was never sent"
    assert len(ids) == len(set(ids))
    # What the page shows: its first items, then each event it has not shown yet (``alerts.js``).
    shown = [a["event_id"] for a in page["items"]]
    shown += [i for i in ids if i not in shown]
    assert sorted(shown) == sorted({str(early.event_id), str(late.event_id)})


def test_a_reconnected_stream_still_sends_an_alert_committed_below_the_ones_it_sent(
        make_settings: Callable[..., ServerSettings], database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page reconnects from the last event id it received (``Last-Event-ID``). That id was the
    newest lift id sent: an alert another writer inserted before it and committed after the
    connection broke was never sent, since the new stream does not know what the old one kept."""
    from types import SimpleNamespace

    from sqlalchemy.orm import sessionmaker

    import server.web.alert_feed as alert_feed
    from server.db import make_engine
    from server.migrate import upgrade_database
    from server.web.alert_feed import SETTLE_S, AlertFeed, StreamCursor, alert_rows, page_cursor

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes one writer at a time: its lift ids commit in order")
    clock = [1000.0]
    monkeypatch.setattr(alert_feed, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    settings = make_settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        now = datetime.now(UTC)
        early = lift_event("benne-11", counts={"battery": 1}, at=now - timedelta(minutes=5))
        late = lift_event("benne-12", counts={"gas_cylinder": 1}, at=now)

        def insert(db: Any, event: Any) -> None:
            row = lift_row(event, now, settings.zone, None)
            db.execute(Lift.__table__.insert(), [{c.name: row[c.name] for c in Lift.__table__.columns
                                                  if c.name in row}])

        feed = AlertFeed(sessions, poll_s=0)
        feed.window()
        clock[0] += SETTLE_S + 1  # a server up for a while: an id is settled
        with sessions() as db:
            items = alert_rows(db, None, 50)
            stream = StreamCursor(page_cursor(feed.window(), items, 50))
        shown = [row["event_id"] for row in items]
        with sessions() as other, other.begin():
            insert(other, early)  # the lower id, committed last
            with sessions() as db, db.begin():
                insert(db, late)
            with sessions() as db:
                events = stream.next_events(db, feed.window())
            assert [row["event_id"] for _, row in events] == [str(late.event_id)]
            shown += [row["event_id"] for _, row in events]
            last_event_id = events[-1][0]
        # The connection broke before ``other`` committed; the browser reconnects from its last id.
        resumed, sent = StreamCursor(last_event_id), []
        for _ in range(2):
            with sessions() as db:
                sent += [row["event_id"] for _, row in resumed.next_events(db, feed.window())]
        assert str(early.event_id) in sent, "the alert committed after the reconnection was never sent"
        assert len(sent) == len(set(sent))
        shown += [i for i in sent if i not in shown]  # alerts.js shows an event_id once
        assert sorted(shown) == sorted([str(early.event_id), str(late.event_id)])
    finally:
        engine.dispose()


def test_a_stream_resumed_from_far_back_sends_each_alert_once_in_order(
        make_settings: Callable[..., ServerSettings]) -> None:
    """Behind the shared window, a stream reads the table 100 alerts at a time, then joins the window."""
    from sqlalchemy.orm import sessionmaker

    from server.db import make_engine
    from server.migrate import upgrade_database
    from server.web.alert_feed import ALERT_BATCH, AlertFeed, StreamCursor

    settings = make_settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        now = datetime.now(UTC)
        events = [lift_event(f"benne-{i % 3}", counts={"battery": 1} if i % 2 else {"bottle": 1},
                             at=now - timedelta(minutes=i)) for i in range(2 * ALERT_BATCH + 60)]
        with sessions() as db, db.begin():
            rows = [lift_row(event, now, settings.zone, None) for event in events]
            db.execute(Lift.__table__.insert(), [{c.name: r[c.name] for c in Lift.__table__.columns if c.name in r}
                                                 for r in rows])
        feed, cursor, sent = AlertFeed(sessions, poll_s=0), StreamCursor(0), []
        for _ in range(10):
            with sessions() as db:
                sent += cursor.next_rows(db, feed.window())
        alerts = [str(e.event_id) for e in events if e.errors]
        assert [row["event_id"] for row in sent] == alerts
        assert cursor.resume_id == 0  # no id is settled yet: a reconnection reads again from where it began
    finally:
        engine.dispose()


def test_a_server_just_started_still_streams_an_alert_committed_out_of_order(
        make_settings: Callable[..., ServerSettings], database_url: str) -> None:
    """A restarted server's first look at the table took the newest lift id as settled at once: an
    alert another writer (another server's ingest, a replay) inserted before and committed after was
    never streamed to the pages that reconnected, though they resumed from before it."""
    from sqlalchemy.orm import sessionmaker

    from server.db import make_engine
    from server.migrate import upgrade_database
    from server.web.alert_feed import AlertFeed, StreamCursor, last_lift_id

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes one writer at a time: its lift ids commit in order")
    settings = make_settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        now = datetime.now(UTC)
        early = lift_event("benne-11", counts={"battery": 1}, at=now - timedelta(minutes=5))
        late = lift_event("benne-12", counts={"gas_cylinder": 1}, at=now)

        def insert(db: Any, event: Any) -> None:
            row = lift_row(event, now, settings.zone, None)
            db.execute(Lift.__table__.insert(), [{c.name: row[c.name] for c in Lift.__table__.columns
                                                  if c.name in row}])

        with sessions() as db:
            resumed_from = last_lift_id(db)  # the page's Last-Event-ID before the restart
        feed, cursor, sent = AlertFeed(sessions, poll_s=0), StreamCursor(resumed_from), []  # just started
        with sessions() as other, other.begin():
            insert(other, early)  # the lower id, committed last
            with sessions() as db, db.begin():
                insert(db, late)
            with sessions() as db:
                sent += cursor.next_rows(db, feed.window())
        with sessions() as db:
            sent += cursor.next_rows(db, feed.window())
        assert [row["event_id"] for row in sent] == [str(late.event_id), str(early.event_id)]
        with sessions() as db:
            assert cursor.next_rows(db, feed.window()) == []  # and once only
    finally:
        engine.dispose()
