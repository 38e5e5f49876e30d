"""Ports for the brokers, servers and dashboards the suite starts.

A port from ``bind(0)`` lies in the kernel's ephemeral range, the range it also draws the local port
of every outgoing connection from. A test that stops its broker and starts it again on the same
port (a broker restart fault) can then find the port taken: by another worker's client connection,
or by one of its own clients reconnecting to the dead port, which TCP lets connect to itself. CI
failed once that way ("127.0.0.1:55907 is already in use"). Ports below the ephemeral range are
never handed out by the kernel, and each pytest-xdist worker draws from its own slice of them.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from pathlib import Path

LOWEST = 20000
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_slice() -> range:
    top = _ephemeral_start()
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % workers
    width = (top - LOWEST) // workers
    return range(LOWEST + index * width, LOWEST + (index + 1) * width)


def _candidates() -> itertools.cycle[int]:
    ports = _worker_slice()
    # A random start, so that back-to-back runs do not reuse the ports the last run just closed.
    start = random.randrange(len(ports)) if len(ports) else 0
    return itertools.cycle([*ports[start:], *ports[:start]])


_NEXT = _candidates()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds now and the kernel will not hand to a client."""
    if _ephemeral_start() - LOWEST < 100:  # a machine whose ephemeral range starts very low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(1000):
        port = next(_NEXT)
        if _bindable(port):
            return port
    raise RuntimeError("no free port below the ephemeral range")
