"""An MQTT broker inside the process (amqtt), for ``trivue demo`` and for tests without Mosquitto.

Production deployments run Mosquitto (or any MQTT 3.1.1 broker). This one exists so that a laptop
with nothing installed can run the whole chain, truck -> broker -> server, over real sockets:
QoS 1, persistent sessions (``clean_session=False``) and retained messages all work as usual.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
RECANCEL_S = 0.5  # how long a shutdown waits before cancelling again a task that lost its cancellation
RESUBSCRIBE_TIMEOUT_S = 60.0  # a client backs off up to 30 s between reconnections (paho's default here)


async def shut_down(broker: Any) -> None:
    """``broker.shutdown()``, cancelling again any task that lost its cancellation meanwhile.

    amqtt stops each client's handler by cancelling its reader and waiting for it to end. On Python
    3.11, ``asyncio.wait_for`` can lose a cancellation that comes as its read completes: the reader
    reads on, the shutdown waits until the client's keepalive runs out (90 s), and the clients stay
    connected to a broker that was told to stop. A task still pending with a cancellation requested
    (``Task.cancelling()``) is cancelled again until the shutdown ends.
    """
    shutdown = asyncio.ensure_future(broker.shutdown())
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while not (await asyncio.wait({shutdown}, timeout=RECANCEL_S))[0] and time.monotonic() < deadline:
        for task in asyncio.all_tasks():
            if task not in (shutdown, asyncio.current_task()) and not task.done() and task.cancelling():
                task.cancel()
    await shutdown


class BrokerError(RuntimeError):
    """The embedded broker could not start (port taken, bad address)."""


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 configuration: one TCP listener, anonymous clients, no $SYS chatter."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        # Disconnected persistent sessions are kept (with their queued QoS 1 messages) for a day.
        "session_expiry_interval": 86_400,
        "plugins": {f"{__name__}.OpenAuthPlugin": {}},
    }


def _open_auth_plugin() -> type:
    from amqtt.plugins.base import BaseAuthPlugin

    class OpenAuthPlugin(BaseAuthPlugin):
        """Accept every client without marking it anonymous.

        amqtt's AnonymousAuthPlugin flags sessions as anonymous and then drops their persistent
        sessions and offline QoS 1 messages; Mosquitto with ``allow_anonymous true`` keeps them,
        and the truck and server rely on that.
        """

        @dataclass
        class Config:
            pass

        async def authenticate(self, *, session: Any) -> bool:
            return True

    return OpenAuthPlugin


def __getattr__(name: str) -> Any:
    # amqtt loads plugins by dotted path; building the class lazily keeps amqtt out of `import trivue.broker`.
    if name == "OpenAuthPlugin":
        return _open_auth_plugin()
    raise AttributeError(name)


class EmbeddedBroker:
    """``with EmbeddedBroker("127.0.0.1", 1883): ...`` runs an amqtt broker in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._broker: Any = None  # the amqtt Broker while it runs

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        if self._port_in_use():
            raise BrokerError(f"cannot start the embedded broker: {self.host}:{self.port} is already in use")
        self._thread = threading.Thread(target=self._run, name=f"mqtt-broker-{self.port}", daemon=True)
        self._thread.start()
        where = f"{self.host}:{self.port}"
        if not self._ready.wait(START_TIMEOUT_S):
            raise BrokerError(f"embedded broker on {where} did not start in {START_TIMEOUT_S} s")
        if self._error is not None:
            raise BrokerError(f"embedded broker on {where} failed: {self._error}") from self._error
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():  # said, never silent: its clients would stay connected
                log.warning("embedded broker on %s:%d still running %.0f s after its stop", self.host, self.port,
                            STOP_TIMEOUT_S)
        self._loop = self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def has_subscriber(self, topic: str) -> bool:
        """Whether a client is subscribed to ``topic`` here (a filter matching it, shared or not)."""
        from paho.mqtt.client import topic_matches_sub

        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return False

        async def filters() -> list[str]:  # read on the broker's own loop, never while it changes them
            # amqtt has no public view of its subscriptions; its _subscriptions maps filter -> sessions.
            return [f for f, subscribers in broker._subscriptions.items() if subscribers]

        try:
            found = asyncio.run_coroutine_threadsafe(filters(), loop).result(timeout=5)
        except (RuntimeError, TimeoutError):  # the loop stopped or is stuck: nobody to count on
            return False
        # "$share/<group>/<filter>" is delivered like "<filter>"
        return any(topic_matches_sub(f.split("/", 2)[2] if f.startswith("$share/") else f, topic) for f in found)

    def drain(self, timeout: float) -> bool:
        """Wait until every message this broker acknowledged has reached its subscribers.

        A PUBACK to a publisher only says the broker holds the message; amqtt then forwards it from
        a queue in memory, and a shutdown drops whatever is still there (Mosquitto with persistence
        would keep it). True when nothing is queued or in flight to a connected subscriber (sent,
        not yet acknowledged); False after ``timeout`` s.
        """
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return True

        async def pending() -> int:  # amqtt's private state, read on the broker's own loop
            queued = broker._broadcast_queue.qsize() + sum(not task.done() for task in broker._tasks_queue)
            for session, _handler in broker._sessions.values():
                # A disconnected session's backlog waits for a client that may never come back.
                if session.transitions.state == "connected":
                    queued += len(session.inflight_out) + session.retained_messages.qsize()
            return queued

        deadline = time.monotonic() + timeout
        while True:
            try:
                left = asyncio.run_coroutine_threadsafe(pending(), loop).result(timeout=5)
            except (RuntimeError, TimeoutError):  # the loop stopped or is stuck: nothing left to wait for
                return False
            if not left:
                return True
            if time.monotonic() > deadline:
                log.warning("%d messages still undelivered after %.0f s; stopping the broker anyway", left, timeout)
                return False
            time.sleep(0.05)

    def _port_in_use(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            return sock.connect_ex((self.host, self.port)) == 0

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start() through _error
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        self._stop = asyncio.Event()
        broker = Broker(broker_config(self.host, self.port))
        await broker.start()  # returns once asyncio.start_server has bound and listens
        self._broker = broker
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            self._broker = None
            await shut_down(broker)


class BrokerHandle:
    """The embedded broker, restartable (a fresh amqtt broker on the same port: sessions are lost)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.broker: EmbeddedBroker | None = None

    def start(self) -> BrokerHandle:
        self.broker = EmbeddedBroker(self.host, self.port).start()
        return self

    def restart(self, resubscribed: str | None = None, timeout: float = RESUBSCRIBE_TIMEOUT_S) -> None:
        """A fresh broker on the same port, once the old one has delivered what it acknowledged.

        Every session is gone with the old one, so a message published before its receiver
        subscribes again reaches nobody: with ``resubscribed`` (a topic, e.g. a truck's lifts), when
        some client (the server) received it before the restart, wait until one subscribes to it
        again (up to ``timeout`` s; a warning after)."""
        had = resubscribed is not None and self.broker is not None and self.broker.has_subscriber(resubscribed)
        if self.broker is not None:
            # The fault being simulated is a restart, not the loss of what this broker already
            # acknowledged: a publisher that got its PUBACK never sends the message again.
            self.broker.drain(timeout)
        self.stop()
        self.start()
        if not had:
            return
        deadline = time.monotonic() + timeout
        while not (self.broker is not None and self.broker.has_subscriber(resubscribed)):  # type: ignore[arg-type]
            if time.monotonic() > deadline:
                log.warning("nobody subscribed to %s again %.0f s after the broker restart", resubscribed, timeout)
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
