"""data-quality histogram: the tenths of the lifts' street confidence, not their address confidence

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINS = [f'conf_{i}' for i in range(10)]
MATCH = 'l.match_confidence'  # what match_quality_days binned until 0015: the address's confidence
STREET = 'COALESCE(l.street_confidence, l.match_confidence)'  # server/ingest/quality.py at 0016


def _move(old: str, new: str) -> None:
    """Move each stored lift from its ``old`` tenth to its ``new`` one, day by day and stream.

    Moved, not recounted: the retention purge has deleted old lifts (and part of the oldest day
    kept) while their counts stay in the roll-up for ever; those keep the tenth they were counted
    in, the lifts still stored move. Only lifts with a street confidence can change tenth.
    """
    sqlite_db = op.get_bind().dialect.name == 'sqlite'

    def tenth(confidence: str) -> str:  # SQLite's CAST truncates, PostgreSQL's rounds, hence FLOOR
        return (f'MIN(CAST({confidence} * 10 AS INTEGER), 9)' if sqlite_db
                else f'LEAST(CAST(FLOOR({confidence} * 10) AS INTEGER), 9)')

    deltas = ', '.join(f'SUM(CASE WHEN {tenth(new)} = {i} THEN 1 ELSE 0 END) - '
                       f'SUM(CASE WHEN {tenth(old)} = {i} THEN 1 ELSE 0 END)' for i in range(10))
    rows = op.get_bind().execute(text(
        f"""SELECT l.day, l.stream, {deltas} FROM lifts l
            WHERE l.street_id IS NOT NULL AND l.street_confidence IS NOT NULL
            GROUP BY l.day, l.stream ORDER BY l.day, l.stream""")).all()
    changes = [{'day': day, 'stream': stream, **{f'd{i}': int(d) for i, d in enumerate(ds)}}
               for day, stream, *ds in rows if any(ds)]
    if changes:
        sets = ', '.join(f'{b} = {b} + :d{i}' for i, b in enumerate(BINS))
        op.get_bind().execute(text(f'UPDATE match_quality_days SET {sets} WHERE day = :day AND stream = :stream'),
                              changes)


def upgrade() -> None:
    _move(MATCH, STREET)


def downgrade() -> None:
    _move(STREET, MATCH)
