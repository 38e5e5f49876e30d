"""items: the streams of their contaminated lifts (route sheet's « Flux »)

Revision ID: r0008
Revises: r0007
Create Date: 2026-12-06 19:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0008"
down_revision: str | None = "r0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Items made before stay NULL: their route sheet names the streams of their photos' lifts, when
    # those are still stored (server.reminders.walking_route).
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("streams", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reminder_items", schema=None) as batch_op:
        batch_op.drop_column("streams")
