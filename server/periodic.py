"""A background thread that runs one piece of server upkeep again and again until stopped.

Retention and fleet rollouts both need it; an exception is logged and the next round tries again,
so upkeep that fails (a database restart, a full disk) never takes the server down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

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
            except Exception:  # the next round tries again; the server keeps serving
                log.exception("%s failed", self.name)
            self._stop.wait(self.interval_s)
