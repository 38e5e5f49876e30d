"""bin registry: each RFID tag's address, so a tagged lift lands on its household's street

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: stored lifts keep their street until `trivue streets rematch`.
    op.create_table(
        'bins',
        sa.Column('tag', sa.String(length=64), nullable=False),
        sa.Column('address_id', sa.Integer(), nullable=True),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['address_id'], ['addresses.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('tag'),
    )
    op.create_index(op.f('ix_bins_address_id'), 'bins', ['address_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_bins_address_id'), table_name='bins')
    op.drop_table('bins')
