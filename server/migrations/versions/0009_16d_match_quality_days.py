"""data-quality page: a daily roll-up of match quality, and partial indexes of ambiguous lifts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINS = [f'conf_{i}' for i in range(10)]
INDEXES = (('ix_lifts_ambiguous_by_street', ['street_id', 'day']), ('ix_lifts_ambiguous_by_day', ['day', 'street_id']))


def upgrade() -> None:
    op.create_table(
        'match_quality_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('stream', sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in ('lifts', 'matched', 'no_gps', *BINS)),
        sa.PrimaryKeyConstraint('day', 'stream'),
    )
    # The stored lifts' figures, as server/ingest/quality.py computed them at 0009 (a migration
    # must not change when the code does). A match confidence's tenth: SQLite's CAST truncates,
    # PostgreSQL's rounds, hence FLOOR there; 1.0 goes in the last tenth.
    sqlite_db = op.get_bind().dialect.name == 'sqlite'
    tenth = ('MIN(CAST(l.match_confidence * 10 AS INTEGER), 9)' if sqlite_db
             else 'LEAST(CAST(FLOOR(l.match_confidence * 10) AS INTEGER), 9)')
    bins = ', '.join(f'SUM(CASE WHEN l.street_id IS NOT NULL AND {tenth} = {i} THEN 1 ELSE 0 END)' for i in range(10))
    op.execute(f"""INSERT INTO match_quality_days (day, stream, lifts, matched, no_gps, {', '.join(BINS)})
        SELECT l.day, l.stream, COUNT(*), SUM(CASE WHEN l.street_id IS NOT NULL THEN 1 ELSE 0 END),
               SUM(CASE WHEN l.street_id IS NULL AND l.lat IS NULL THEN 1 ELSE 0 END), {bins}
        FROM lifts l GROUP BY l.day, l.stream""")
    # A few per cent of the lifts, by street (the page's all-time default) and by day (a period);
    # on PostgreSQL they cascade to every month partition of ``lifts``.
    for name, columns in INDEXES:
        op.create_index(name, 'lifts', columns, unique=False, postgresql_where=sa.text('street_confidence < 0.8'),
                        sqlite_where=sa.text('street_confidence < 0.8'))

def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name='lifts', postgresql_where=sa.text('street_confidence < 0.8'),
                      sqlite_where=sa.text('street_confidence < 0.8'))
    op.drop_table('match_quality_days')
