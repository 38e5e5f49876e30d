"""The server suite's fixtures (SQLite and PostgreSQL databases, settings, the running app) reused here,
and the ingest harness the hostile-input, fuzz, bounds and privacy tests share."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.harness import Harness
from tests.server.conftest import (  # noqa: F401 - fixtures
    database_url,
    make_settings,
    postgres_server_url,
    run_server,
    server,
)


@pytest.fixture
def harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:  # noqa: F811 (the fixture, by name)
    made = Harness(database_url, tmp_path / "data")
    yield made
    made.engine.dispose()
