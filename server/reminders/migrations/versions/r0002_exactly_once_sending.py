"""exactly-once sending: claim time, attempts, retry time, stable message id

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-02 20:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'r0002'
down_revision: str | None = 'r0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.drop_column('message_id')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('attempts')
