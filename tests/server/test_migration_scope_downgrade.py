"""0022 and 0025 downgrades refuse to drop ``communes`` while it limits an account or a token: the
old schema has no such column, so every mairie's agent and integration would see every commune (the
households too, for a manager). A refusal changes nothing, on SQLite and PostgreSQL; once no row is
limited any more, the downgrade goes through."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.util import CommandError
from sqlalchemy import inspect, text

from server.db import make_engine
from server.migrate import alembic_config, current_revision
from tests.server.test_migrations import migrator

USERS = ("INSERT INTO users (name, password_hash, role, created_at, disabled, communes) "
         "VALUES (:name, 'h', :role, '2026-11-02 08:00:00', :disabled, :communes)")
TOKENS = ("INSERT INTO api_tokens (name, token_hash, prefix, role, created_at, revoked_at, communes) "
          "VALUES (:name, :name, 'trv_abc', 'viewer', '2026-11-02 08:00:00', :revoked, :communes)")


def snapshot(engine: Any) -> dict[str, Any]:
    """What a refused downgrade must leave as it found: the revision, every table, their columns and rows."""
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        rows = {table: sorted(map(tuple, connection.execute(text(f"SELECT * FROM {table}"))), key=repr)
                for table in ("users", "api_tokens") if table in tables}
    return {"revision": current_revision(engine), "tables": tables, "rows": rows,
            "columns": {table: [c["name"] for c in inspect(engine).get_columns(table)] for table in rows}}


@pytest.mark.parametrize("disabled", [False, True], ids=["enabled", "disabled"])
def test_user_communes_downgrade_is_refused_while_an_account_is_limited(database_url: str, disabled: bool) -> None:
    """A disabled account blocks too: ``trivue users enable`` would bring it back seeing every commune."""
    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    try:
        migrate("upgrade", "0022")
        with engine.begin() as connection:
            connection.execute(text(USERS), [
                {"name": "admin", "role": "admin", "disabled": False, "communes": None},
                {"name": "agent-orgeres", "role": "manager", "disabled": disabled, "communes": '["35208"]'},
                {"name": "agent-vern", "role": "viewer", "disabled": False, "communes": '["35352", "35208"]'}])
        before = snapshot(engine)
        with pytest.raises(CommandError) as refused:
            migrate("downgrade", "0021")
        message = str(refused.value)
        assert message.startswith("0022: 2 accounts limited to communes would see every commune"), message
        assert "agent-orgeres" in message and "agent-vern" in message and "admin," not in message
        assert "trivue users disable NAME" in message and "the backup taken before the upgrade" in message
        assert snapshot(engine) == before, "a refused downgrade changes nothing"

        with engine.begin() as connection:  # the scopes lifted (trivue users communes NAME --all)
            connection.execute(text("UPDATE users SET communes = NULL"))
        migrate("downgrade", "0021")
        assert current_revision(engine) == "0021"
        assert "communes" not in {c["name"] for c in inspect(engine).get_columns("users")}
        migrate("upgrade", "head")
    finally:
        engine.dispose()


def test_token_communes_downgrade_is_refused_while_a_live_token_is_limited(database_url: str) -> None:
    """A revoked token does not block: no command takes a revocation back, so it grants nothing, before
    the downgrade or after."""
    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    try:
        migrate("upgrade", "0025")
        with engine.begin() as connection:
            connection.execute(text(TOKENS), [
                {"name": "grafana", "revoked": None, "communes": None},
                {"name": "sig-orgeres", "revoked": None, "communes": '["35208"]'},
                {"name": "old-sig", "revoked": "2026-11-03 08:00:00", "communes": '["35352"]'}])
            live = connection.execute(text("SELECT id FROM api_tokens WHERE name = 'sig-orgeres'")).scalar_one()
        before = snapshot(engine)
        with pytest.raises(CommandError) as refused:
            migrate("downgrade", "0024")
        message = str(refused.value)
        assert message.startswith("0025: 1 token limited to communes would see every commune"), message
        assert f"id {live} (sig-orgeres)" in message and "old-sig" not in message
        assert "trivue tokens revoke ID" in message and "the backup taken before the upgrade" in message
        assert snapshot(engine) == before, "a refused downgrade changes nothing"

        with engine.begin() as connection:  # trivue tokens revoke ID
            connection.execute(text("UPDATE api_tokens SET revoked_at = '2026-11-04 08:00:00' WHERE id = :id"),
                               {"id": live})
        migrate("downgrade", "0024")
        assert current_revision(engine) == "0024"
        assert "communes" not in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == 3
        migrate("upgrade", "head")
    finally:
        engine.dispose()


def test_a_downgrade_past_both_refused_at_0022_leaves_the_head_schema_whole(database_url: str) -> None:
    """Down from the head to 0021: 0025, 0024 and 0023 go first, then 0022 refuses: their changes go
    back with it (one transaction), no half-rebuilt ``api_tokens`` left behind on SQLite."""
    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    try:
        migrate("upgrade", "head")
        with engine.begin() as connection:
            connection.execute(text(USERS), [
                {"name": "agent-orgeres", "role": "viewer", "disabled": True, "communes": '["35208"]'}])
            connection.execute(text(TOKENS), [{"name": "grafana", "revoked": None, "communes": None}])
        before = snapshot(engine)
        with pytest.raises(CommandError, match=r"^0022: 1 account limited to communes"):
            migrate("downgrade", "0021")
        assert snapshot(engine) == before, "a refused downgrade changes nothing"
    finally:
        engine.dispose()
