"""Every table of the core database in one metadata, for Alembic's ``env.py`` and the schema tests.

The tables live beside the code that owns them (audit, fleet, ingest, labels, streets, web accounts); importing this
module registers them all on ``server.db.Base``. The reminders' tables share the database but
have their own metadata and Alembic history (``server/reminders/migrations``).
"""

from __future__ import annotations

from sqlalchemy import MetaData

import server.audit
import server.fleet.models
import server.ingest.models
import server.labels.models
import server.streets.models
import server.web.accounts
import server.web.throttle  # noqa: F401  (the seven modules register their tables on Base)
from server.db import Base
from server.ingest.partitions import DEFAULT, NAME
from server.reminders.models import VERSION_TABLE, RemindersBase


def load_models() -> MetaData:
    """``Base.metadata`` with every core table (importing this module registered them)."""
    return Base.metadata


def foreign_tables() -> frozenset[str]:
    """Tables in the same database that another Alembic tree owns: the reminders' tables and their
    version table (``server/reminders/migrations``, ``alembic_version_reminders``)."""
    return frozenset({VERSION_TABLE, *RemindersBase.metadata.tables})


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic ``include_object`` of the core tree: autogenerate and ``alembic check`` would otherwise
    see the reminders' tables, and the partitions of ``lifts``, as stale core tables and propose
    dropping them (with their indexes)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    if table is not None and (table == DEFAULT or NAME.match(table)):
        return False  # a month partition of PostgreSQL lifts (server.ingest.partitions): lifts itself is the model
    return table not in foreign_tables()
