"""lift overrule: a person judged the truck's verdict wrong (GDPR art. 16 / 22)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ('overruled_at', 'overruled_by', 'overrule_reason')


def upgrade() -> None:
    # Plain nullable ADD COLUMNs, as 0011: PostgreSQL runs them on the partitioned ``lifts`` (cascading
    # to every month partition, no rewrite) and SQLite without rebuilding the table. The truck's own
    # columns (contaminated, errors, score) are never changed: an overruled lift keeps its judgement,
    # and the aggregates count it clean while ``overruled_at`` is set (server.ingest.overrule).
    op.add_column('lifts', sa.Column('overruled_at', sa.DateTime(), nullable=True))
    op.add_column('lifts', sa.Column('overruled_by', sa.String(length=128), nullable=True))
    op.add_column('lifts', sa.Column('overrule_reason', sa.String(length=300), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place; batch mode would rebuild the table. Aggregates written
    # while lifts were overruled count them clean: `trivue streets rematch` recounts them.
    for column in reversed(COLUMNS):
        op.drop_column('lifts', column)
