"""A background thread that runs one piece of server upkeep again and again until stopped.

Retention and fleet rollouts both need it; an exception is logged and the next round tries again,
so upkeep that fails (a database restart, a full disk) never takes the server down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work()`` every ``interval_s`` in a daemon thread (first at once when ``first_now``)."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], object], *, first_now: bool) -> None:
        self.name, self.interval_s, self.work, self.first_now = name, interval_s, work, first_now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"trivue-{name.replace(' ', '-')}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        if not self.first_now and self._stop.wait(self.interval_s):
            return
        while not self._stop.is_set():
            try:
                self.work()
            except (OperationalError, InterfaceError) as error:
                # The database away (a restart, a failover): the rollout check runs every 10 s, and a
                # traceback per round buried the journal; one line says what and when, as ingest does.
                log.error("%s failed: the database is unavailable (%s)", self.name, outage_words(error))
            except Exception:  # the next round tries again; the server keeps serving
                log.exception("%s failed", self.name)
            self._stop.wait(self.interval_s)


def outage_words(error: BaseException) -> str:
    """The driver's first line (``connection failed: ... Connection refused``), for a one-line log of
    a database outage (upkeep here, API requests in ``server.web.rejections``): SQLAlchemy's message
    adds the statement, its parameters and a help link."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
