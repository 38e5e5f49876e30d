"""lifts: the data-quality page's ambiguous lifts are judged ones (view_unusable IS NULL)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (("ix_lifts_ambiguous_by_street", ["street_id", "day"]), ("ix_lifts_ambiguous_by_day", ["day", "street_id"]))
# server.ingest.models._AMBIGUOUS_WHERE before and at 0024, written identically: SQLite uses a partial
# index only for a WHERE term identical to its own. A lift whose camera view was unusable (0021) is
# counted in no street: the page's « rue incertaine » count, « counted in the likeliest street », left
# it out by reading each listed lift's row (115 ms instead of 3.5 ms for 1,000,000 lifts on SQLite).
BEFORE = "street_confidence < 0.8"
AFTER = "street_confidence < 0.8 AND view_unusable IS NULL"


def _swap(old: str, new: str) -> None:
    # On PostgreSQL they cascade to every month partition of ``lifts`` (one read of the table each).
    for name, columns in INDEXES:
        op.drop_index(name, table_name="lifts", postgresql_where=sa.text(old), sqlite_where=sa.text(old))
        op.create_index(name, "lifts", columns, unique=False, postgresql_where=sa.text(new),
                        sqlite_where=sa.text(new))


def upgrade() -> None:
    _swap(BEFORE, AFTER)


def downgrade() -> None:
    _swap(AFTER, BEFORE)
