"""commune code INSEE of streets and addresses: the open data names a commune as French public data does

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain nullable ADD COLUMN on both databases. Nothing stored before says a code (addresses
    # kept no code_insee, a commune name is ambiguous): they stay empty until the BAN file is
    # imported again (in place, ids kept) or the streets with --insee (docs/streets.md).
    op.add_column('streets', sa.Column('code_insee', sa.String(length=5), nullable=True))
    op.add_column('addresses', sa.Column('code_insee', sa.String(length=5), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place; batch mode would rebuild the table.
    op.drop_column('addresses', 'code_insee')
    op.drop_column('streets', 'code_insee')
