"""street items: their contaminated lifts without a sure household (the route sheet's "Toute la rue")

Revision ID: r0005
Revises: r0004
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0005"
down_revision: str | None = "r0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Items made before stay NULL: their route sheet line says the street's figures, no more.
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unattributed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.drop_column("unattributed")
