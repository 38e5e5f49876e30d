"""The alert lifts the live stream sends (``/api/alerts/stream``), in spite of ids that commit out of order.

A lift takes its id when it is inserted and becomes visible when its transaction commits. On
PostgreSQL two writers (two ingest workers on one shared subscription, an ingest and a
``trivue dead-letters replay``) can commit in the other order: a batch that took ids 100-199
commits after one that took 200-299. A stream that only read on from the last id it sent would
never send the alerts of 100-199. So a stream keeps the ids it sent above a *settled* id, the
newest lift id seen at least ``SETTLE_S`` ago (every transaction open then has committed or rolled
back since), and looks again at the alerts above it at every poll. For ``SETTLE_S`` after the server
starts no id is settled yet: the newest one seen at start-up was taken as settled at once, and an alert
another writer committed just after it, with a lower id, never reached the pages resuming from before it.

A page resumes from the event id it last received (``Last-Event-ID``) or, on its first load, from
the ``/api/alerts`` cursor: both are a *settled* point, never the newest id sent, so that an alert
committed late below the newest one still comes after a reconnection or a first load. What was
already sent above that point comes again; the page shows each alert once (by its ``event_id``).

That look-back is one query per app and poll interval, whatever the number of open dashboards
(``AlertFeed``): each stream filters the shared window in memory, and only a stream resumed from
further back reads the table itself until it reaches the window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.ingest.models import Lift
from server.streets.models import Street

SETTLE_S = 10.0  # longer than any writer's transaction (an ingest batch, a replay chunk of 500 letters)
WINDOW_MAX = 5000  # alert lifts in the shared window; beyond it (an alert storm) streams read the table
ALERT_BATCH = 100  # alerts a stream reads from the table per poll when it is behind the window


def alert_rows(db: Session, after: int | None, limit: int) -> list[dict[str, Any]]:
    """Alert lifts, newest first (``after`` None) or the ones stored after lift id ``after``, oldest first.

    A lift whose camera view was unusable (``view_unusable``, wire 1.4) is no alert, whatever its
    truck listed: it was not judged (its detections are not retained, as on the street page) and
    counts in no figure, the streets' alerts included (the crew's alert in the cab never waits for it).
    Nor is a lift whose judgement a manager overruled (``overruled_at``): it counts clean, "no alert",
    in every figure; the overrule undone, it is listed again (a stream that already passed its id does
    not send it again: the page's list does, once reloaded)."""
    query = (select(Lift.id, Lift.event_id, Lift.truck_id, Lift.stream, Lift.started_at, Lift.received_at,
                    Lift.errors, Lift.street_id, Street.name, Street.commune)
             .outerjoin(Street, Street.id == Lift.street_id)
             .where(Lift.has_alert.is_(True), Lift.view_unusable.is_(None), Lift.overruled_at.is_(None)))
    query = query.order_by(Lift.id.desc()) if after is None else query.where(Lift.id > after).order_by(Lift.id)
    return [{"id": r.id, "event_id": r.event_id, "truck_id": r.truck_id, "stream": r.stream,
             # received_at: an alert stored long after its lift (a truck back in coverage) is past, said late
             "started_at": r.started_at.isoformat(), "received_at": r.received_at.isoformat(),
             "errors": r.errors, "street_id": r.street_id,
             "street_name": r.name, "commune": r.commune}
            for r in db.execute(query.limit(limit))]


def last_lift_id(db: Session) -> int:
    return db.scalar(select(func.max(Lift.id))) or 0


@dataclass(frozen=True, slots=True)
class Window:
    settled: int | None  # no lift id at or below it can still appear; None: just started, none known yet
    rows: list[dict[str, Any]]  # the alert lifts above ``settled``, oldest first (none while it is None)
    complete: bool  # False when ``WINDOW_MAX`` cut it short


class AlertFeed:
    """The alert lifts above the settled id, read at most once per ``poll_s`` for all streams."""

    def __init__(self, sessions: sessionmaker[Session], poll_s: float) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._heads: deque[tuple[float, int]] = deque()  # (when, newest lift id visible then)
        self._window: Window | None = None
        self._read_at = 0.0

    def window(self) -> Window:
        with self._lock:
            now = time.monotonic()
            if self._window is not None and now - self._read_at < self.poll_s:
                return self._window
            with self.sessions() as db:
                self._heads.append((now, last_lift_id(db)))
                # The newest head seen SETTLE_S ago or more; right after start-up, none yet.
                while len(self._heads) > 1 and now - self._heads[1][0] >= SETTLE_S:
                    self._heads.popleft()
                when, settled = self._heads[0]
                if now - when < SETTLE_S:  # each stream reads the table from its own cursor meanwhile
                    self._window, self._read_at = Window(None, [], False), now
                    return self._window
                rows = alert_rows(db, settled, WINDOW_MAX)
            self._window, self._read_at = Window(settled, rows, len(rows) < WINDOW_MAX), now
            return self._window


class StreamCursor:
    """Where one stream is: every alert at or below ``low`` was sent, and ``sent`` holds the ids sent
    above it (so that an alert committed late is sent once, and the others not again)."""

    def __init__(self, after: int) -> None:
        self.low = after
        self.sent: set[int] = set()

    @property
    def resume_id(self) -> int:
        """The event id to give the browser (its ``Last-Event-ID`` on reconnection): ``low``. The
        newest id sent lost an older alert committed after it, since a new stream has no ``sent``."""
        return self.low

    def next_events(self, db: Session, window: Window) -> list[tuple[int, dict[str, Any]]]:
        """The alerts to send now, each with its event id: where a stream cut just after that
        event resumes, below the poll's alerts not sent yet and never above ``low``. One id for the
        whole poll skipped the poll's later alerts when a connection broke after its first event."""
        rows = self.next_rows(db, window)
        # Oldest first: resuming just below the next alert sends it and the ones after it again.
        ids = [min(self.low, row["id"] - 1) for row in rows[1:]] + [self.low] if rows else []
        return list(zip(ids, rows, strict=True))

    def next_rows(self, db: Session, window: Window) -> list[dict[str, Any]]:
        """The alerts to send now, oldest first."""
        if window.settled is not None and self.low >= window.settled and window.complete:
            rows = [row for row in window.rows if row["id"] > self.low]
            settled = window.settled
        else:  # resumed from before the window, an alert storm, or just started: read the table from ``low``
            limit = ALERT_BATCH + len(self.sent)  # the ids already sent come back: read past them
            rows = alert_rows(db, self.low, limit)
            if window.settled is None:  # no id is known settled: ``low`` stays, ``sent`` keeps each one sent
                settled = self.low
            else:
                settled = min(window.settled, rows[-1]["id"]) if len(rows) == limit else window.settled
        fresh = [row for row in rows if row["id"] not in self.sent]
        self.sent.update(row["id"] for row in fresh)
        if settled > self.low:
            self.low = settled
            self.sent = {i for i in self.sent if i > settled}
        return fresh


def page_cursor(window: Window, items: list[dict[str, Any]], limit: int) -> int:
    """Where a page that shows ``items`` (``alert_rows(db, None, limit)``) opens its stream: the settled
    id, below which no alert can still appear. Just after start-up none is known: below every alert if
    ``items`` holds them all, else below the oldest shown (an alert committed later further down
    than the ``limit`` newest ones is then missed, as before)."""
    if window.settled is not None:
        return window.settled
    return items[-1]["id"] - 1 if len(items) == limit else 0


_feeds_lock = threading.Lock()


def feed_of(state: Any, sessions: sessionmaker[Session], poll_s: float) -> AlertFeed:
    """The app's one feed, kept on ``app.state``."""
    with _feeds_lock:
        feed = getattr(state, "alert_feed", None)
        if feed is None:
            feed = state.alert_feed = AlertFeed(sessions, poll_s)
        return feed
