"""frozen comparison streets of a campaign

Revision ID: r0003
Revises: r0002
Create Date: 2026-12-02 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'r0003'
down_revision: str | None = 'r0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('reminder_campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('controls', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reminder_campaigns', schema=None) as batch_op:
        batch_op.drop_column('controls')
