"""lifts: a partial index of the lifts that still hold a bin tag or an address

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# server.ingest.models._HOUSEHOLD_WHERE at 0020, written identically: SQLite uses a partial index
# only for a WHERE term identical to its own.
WHERE = 'bin_id IS NOT NULL OR address_id IS NOT NULL OR address_distance_m IS NOT NULL'


def upgrade() -> None:
    # The retention purge's street-level pass (server.ingest.street_level.clear_stored) reads it while
    # household_level is off: every lift stored until then at first, none once it has passed. On
    # PostgreSQL it cascades to every month partition of ``lifts`` (one read of the table, here).
    op.create_index('ix_lifts_household', 'lifts', ['id'], unique=False,
                    postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index('ix_lifts_household', table_name='lifts', postgresql_where=sa.text(WHERE),
                  sqlite_where=sa.text(WHERE))
