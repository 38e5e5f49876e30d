"""track matching: each lift's street posterior from the truck's path, and provisional matches

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Issue 16 part 2. Plain ADD COLUMN and CREATE INDEX, which PostgreSQL also runs on a
    # partitioned ``lifts`` (cascading to every partition) and SQLite without rebuilding the table.
    # Lifts stored before are final (match_provisional false) with no street posterior.
    op.add_column('lifts', sa.Column('street_confidence', sa.Float(), nullable=True))
    op.add_column('lifts', sa.Column('match_provisional', sa.Boolean(), server_default=sa.false(),
                                     nullable=False))
    op.create_index('ix_lifts_provisional', 'lifts', ['truck_id', 'started_at'], unique=False,
                    postgresql_where=sa.text('match_provisional'), sqlite_where=sa.text('match_provisional'))


def downgrade() -> None:
    op.drop_index('ix_lifts_provisional', table_name='lifts',
                  postgresql_where=sa.text('match_provisional'), sqlite_where=sa.text('match_provisional'))
    # SQLite (3.35+) drops a column in place; batch mode would rebuild the table.
    op.drop_column('lifts', 'match_provisional')
    op.drop_column('lifts', 'street_confidence')
