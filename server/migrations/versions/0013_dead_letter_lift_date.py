"""dead letters: the refused lift's date, and the large letters (payloads held whole for a replay)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 16:30:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LARGE = 'payload_size > 4096'  # server.ingest.models._LARGE_WHERE at this revision
BATCH = 1000


def upgrade() -> None:
    # A plain nullable ADD COLUMN: no table rewrite on PostgreSQL, none on SQLite.
    op.add_column('dead_letters', sa.Column('lift_started_at', sa.DateTime(), nullable=True))
    op.create_index('ix_dead_letters_lift_started_at', 'dead_letters', ['lift_started_at'], unique=False)
    op.create_index('ix_dead_letters_large', 'dead_letters', ['payload_size'], unique=False,
                    postgresql_where=sa.text(LARGE), sqlite_where=sa.text(LARGE))
    _date_stored_lift_letters()


def _date_stored_lift_letters() -> None:
    """The letters of refused lifts already stored get their lift's date, so that the next purge
    takes those older than the raw lifts' retention (as ``server.ingest.letters.lift_date`` reads it;
    written out here, as the code may change after this revision)."""
    connection = op.get_bind()
    letters = sa.table('dead_letters', sa.column('id', sa.BigInteger), sa.column('topic', sa.String),
                       sa.column('payload', sa.LargeBinary), sa.column('lift_started_at', sa.DateTime))
    cursor = 0
    while True:
        rows = connection.execute(sa.select(letters.c.id, letters.c.payload)
                                  .where(letters.c.id > cursor, letters.c.topic.like('%/lift'))
                                  .order_by(letters.c.id).limit(BATCH)).all()
        if not rows:
            return
        cursor = rows[-1][0]
        dated = [{"letter_id": letter_id, "at": at} for letter_id, payload in rows
                 if (at := _started_at(bytes(payload or b""))) is not None]
        if dated:
            connection.execute(letters.update().where(letters.c.id == sa.bindparam('letter_id'))
                               .values(lift_started_at=sa.bindparam('at')), dated)


def _started_at(payload: bytes) -> datetime | None:
    try:
        value = json.loads(payload).get('started_at')
        at = datetime.fromisoformat(value)
        return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):  # not JSON, no object, no date
        return None


def downgrade() -> None:
    op.drop_index('ix_dead_letters_large', table_name='dead_letters',
                  postgresql_where=sa.text(LARGE), sqlite_where=sa.text(LARGE))
    op.drop_index('ix_dead_letters_lift_started_at', table_name='dead_letters')
    op.drop_column('dead_letters', 'lift_started_at')
