"""The queue between paho's network thread and the ingest writer: bounded in messages and bytes."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from server.db import utcnow
from server.ingest.inbox import MqttMessage
from server.ingest.received import ReceivedQueue


def message(size: int, mid: int = 0) -> MqttMessage:
    return MqttMessage("t/benne-01/evidence/x", b"x" * size, utcnow(), mid, 1)


def put_in_thread(received: ReceivedQueue, item: MqttMessage) -> threading.Thread:
    thread = threading.Thread(target=received.put, args=(item,), daemon=True)
    thread.start()
    return thread


def test_a_put_over_the_byte_bound_waits_until_the_writer_takes_room() -> None:
    received = ReceivedQueue(max_messages=100, max_bytes=1000)
    received.put(message(600, 1))
    received.put(message(300, 2))
    waiting = put_in_thread(received, message(200, 3))  # 1,100 bytes: over the bound
    waiting.join(0.3)
    assert waiting.is_alive() and received.qsize() == 2 and received.bytes() == 900
    assert received.get(timeout=1).mid == 1  # first in, first out; frees 600 bytes
    waiting.join(2)
    assert not waiting.is_alive()
    assert [received.get(timeout=1).mid for _ in range(2)] == [2, 3]
    assert received.bytes() == 0 and received.empty() and received.peak_bytes == 900


def test_a_put_over_the_message_bound_waits_too() -> None:
    received = ReceivedQueue(max_messages=2, max_bytes=10**9)
    received.put(message(1, 1))
    received.put(message(1, 2))
    waiting = put_in_thread(received, message(1, 3))
    waiting.join(0.3)
    assert waiting.is_alive()
    received.get(timeout=1)
    waiting.join(2)
    assert not waiting.is_alive() and received.qsize() == 2


def test_a_message_larger_than_the_bound_gets_in_alone() -> None:
    """Else one large photo would stop ingest for good."""
    received = ReceivedQueue(max_messages=10, max_bytes=100)
    received.put(message(5000, 1))  # empty queue: admitted
    waiting = put_in_thread(received, message(10, 2))  # behind it, waits for it to be taken
    waiting.join(0.3)
    assert waiting.is_alive()
    assert received.get(timeout=1).mid == 1
    waiting.join(2)
    assert received.get(timeout=1).mid == 2


def test_get_waits_for_a_message_then_gives_up() -> None:
    received = ReceivedQueue(max_messages=10, max_bytes=100)
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        received.get(timeout=0.2)
    assert time.monotonic() - started >= 0.19
    with pytest.raises(queue.Empty):
        received.get(timeout=0)
    threading.Timer(0.1, received.put, args=(message(1, 7),)).start()
    assert received.get(timeout=5).mid == 7


@pytest.mark.parametrize(("messages", "size"), [(0, 10), (10, 0)])
def test_bounds_must_be_positive(messages: int, size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReceivedQueue(messages, size)
