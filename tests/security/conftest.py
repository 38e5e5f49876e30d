"""The server suite's fixtures (SQLite and PostgreSQL databases, settings, the running app) reused here."""

from tests.server.conftest import (  # noqa: F401 - fixtures
    database_url,
    make_settings,
    postgres_server_url,
    run_server,
    server,
)
