"""0025: ``api_tokens.communes`` (a token limited to some communes), on SQLite and PostgreSQL. The
tokens made before keep working and see every commune, as they did; a downgrade keeps them too (a
limited token revoked first: test_migration_scope_downgrade)."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from server.db import make_engine
from server.migrate import alembic_config
from tests.server.test_migrations import migrator

REVISION = "0025"


def columns(engine: object) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("api_tokens")}  # type: ignore[arg-type]


def test_token_communes_upgrade_and_downgrade_keep_the_tokens(database_url: str) -> None:
    config = alembic_config()
    before = str(ScriptDirectory.from_config(config).get_revision(REVISION).down_revision)
    engine = make_engine(database_url)
    migrate = migrator(engine, config)
    try:
        migrate("upgrade", before)
        assert "communes" not in columns(engine)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO api_tokens (name, token_hash, prefix, role, created_at) "
                "VALUES ('grafana', 'h1', 'trv_abc', 'viewer', '2026-11-02 08:00:00')"))
        migrate("upgrade", REVISION)
        assert "communes" in columns(engine)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT name, communes FROM api_tokens")).one() == ("grafana", None)
            connection.execute(text(
                "INSERT INTO api_tokens (name, token_hash, prefix, role, created_at, revoked_at, communes) "
                "VALUES ('sig', 'h2', 'trv_def', 'viewer', '2026-11-02 08:00:00', '2026-11-03 08:00:00', "
                "'[\"45234\"]')"))
        migrate("downgrade", before)
        assert "communes" not in columns(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM api_tokens ORDER BY id")).scalars().all() == [
                "grafana", "sig"]
        migrate("upgrade", "head")
        assert "communes" in columns(engine)
    finally:
        engine.dispose()
