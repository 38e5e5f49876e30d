"""Fixtures shared by the whole suite: real data, a real MQTT broker, real databases."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from base.paths import COCO_WEIGHTS, SHARED_DIR
from tests.ports import free_port


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """``trivue`` commands run in-process configure the root logger (``basicConfig(force=True)``) with
    a handler on the test's captured stderr; restore the previous handlers so later tests' log lines
    do not go to a closed stream ("--- Logging error ---"). Tools run in-process that configure
    logging with ``dictConfig`` (import-linter in tests/test_layers.py) disable every logger that
    exists by then: enable them again, or the worker's later tests capture no log line (caplog)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    enabled = [logger for logger in logging.root.manager.loggerDict.values()
               if isinstance(logger, logging.Logger) and not logger.disabled]
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in enabled:
        logger.disabled = False


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at the test cost (8 KiB, 1 pass, 1 lane: well under a millisecond) instead of the
    production cost (64 MiB, 3 passes, 4 lanes: a third of a second per hash or check on this
    machine under load), in every in-process server: the tests add users and log in by the hundred,
    and none of them is about argon2's cost (still argon2id, same ``verify``/``check_needs_rehash``
    path). Servers started as subprocesses keep the production cost."""
    try:
        from argon2 import PasswordHasher

        from server.web import auth
    except ImportError:  # a truck-only install: no server, no passwords
        yield
        return
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", cheap)
        patch.setattr(auth, "_DUMMY_HASH", cheap.hash("not-a-real-password"))
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files holding ``heavy`` tests first, the heaviest first, then the rest, files with the
    most tests first; each file's tests keep their order.

    ``make test`` hands whole files to its workers in this order (``--dist loadfile
    --no-loadscope-reorder``). xdist's own order (most tests first) handed the near-duplicate
    check of the shipped data (minutes of SIFT) out near the end, and the run ended waiting on it
    with one worker busy: the longest jobs first keeps every worker busy to the end."""
    weight: dict[Path, float] = {}
    count: dict[Path, int] = {}
    for item in items:
        count[item.path] = count.get(item.path, 0) + 1
        marker = item.get_closest_marker("heavy")
        if marker is not None:
            weight[item.path] = weight.get(item.path, 0.0) + float(marker.kwargs["cpu_s"])
            if item.get_closest_marker("timeout") is None:  # four heavy tests now start side by side
                item.add_marker(pytest.mark.timeout(max(300, 4 * marker.kwargs["cpu_s"])))
    items.sort(key=lambda item: (-weight.get(item.path, 0.0), -count[item.path], str(item.path)))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data folder {SHARED_DIR} is absent")
    return SHARED_DIR


@pytest.fixture(scope="session")
def coco_model(shared_dir: Path) -> Path:
    if not COCO_WEIGHTS.is_file():
        pytest.skip(f"{COCO_WEIGHTS} is absent")
    return COCO_WEIGHTS


@pytest.fixture(scope="session")
def litter_val_images(shared_dir: Path) -> list[Path]:
    return sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    kind: str  # "mosquitto" or "embedded"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[BrokerAddress]:
    """Mosquitto on 127.0.0.1:1883 where it runs (dev machines, CI), else the embedded broker."""
    if port_open("127.0.0.1", 1883):
        yield BrokerAddress("127.0.0.1", 1883, "mosquitto")
        return
    from trivue.broker import EmbeddedBroker

    port = free_port()
    with EmbeddedBroker("127.0.0.1", port):
        yield BrokerAddress("127.0.0.1", port, "embedded")


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return port_open("127.0.0.1", 5432)


# Debian's Chromium driven by Playwright with executable_path: never a browser download.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One browser for the whole run: Playwright's sync API allows a single live instance per
    thread (a second ``sync_playwright()`` while one is open fails with "inside the asyncio loop")."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
