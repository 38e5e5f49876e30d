"""database settings: facts the stored data depends on (the time zone of the collection days)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty here: a migration does not know the server's settings. The first start after it records
    # the configured ``timezone`` (server.ingest.day_zone), the honest guess for days written before.
    op.create_table(
        "database_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("database_settings")
