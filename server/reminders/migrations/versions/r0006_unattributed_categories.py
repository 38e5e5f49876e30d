"""street items: the error categories of their lifts without a sure household (route sheet's errors)

Revision ID: r0006
Revises: r0005
Create Date: 2026-12-06 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0006"
down_revision: str | None = "r0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Items made before stay NULL: their route sheet line says its errors are the whole street's.
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unattributed_categories", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.drop_column("unattributed_categories")
