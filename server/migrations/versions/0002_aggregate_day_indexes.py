"""aggregates: indexes on the day, for period queries over every street

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # bench/queries.py, 10 million lifts on PostgreSQL: the month's totals went from a parallel
    # sequential scan of street_days to a bitmap index scan (16 ms -> 8 ms), the month's top errors
    # from a scan of 1.1 million street_day_errors rows to the month's 90,000.
    op.create_index('ix_street_days_day_stream', 'street_days', ['day', 'stream'], unique=False)
    op.create_index('ix_street_day_errors_day', 'street_day_errors', ['day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_street_day_errors_day', table_name='street_day_errors')
    op.drop_index('ix_street_days_day_stream', table_name='street_days')
