"""Bring a database to the newest schema with Alembic; ``trivue server`` does it at every start."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic narrates its plugins and each step at INFO; our one line says what changed.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Modules whose tables live on server.db.Base; streets is optional while it is being written.
MODEL_MODULES = ("server.store", "server.streets")


def load_models() -> None:
    """Import every module that declares tables, so ``Base.metadata`` is complete."""
    for name in MODEL_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def foreign_tables() -> frozenset[str]:
    """Tables in the same database that another Alembic tree owns: the reminders' tables and their
    version table (``server/reminder_migrations``, ``alembic_version_reminders``)."""
    if importlib.util.find_spec("server.reminder_store") is None:
        return frozenset()
    from server.reminder_store import VERSION_TABLE, RemindersBase

    return frozenset({VERSION_TABLE, *RemindersBase.metadata.tables})


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic ``include_object`` of the core tree: autogenerate and ``alembic check`` would otherwise
    see the reminders' tables as stale core tables and propose dropping them (with their indexes)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in foreign_tables()


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(engine: Engine) -> str | None:
    """Apply pending migrations; returns the revision the database is at afterwards."""
    from alembic import command

    config = alembic_config()
    before = current_revision(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    after = current_revision(engine)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)
    return after
