"""trucks: the start times of the agents heard lately, to tell two agents under one truck id

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trucks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agents", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trucks", schema=None) as batch_op:
        batch_op.drop_column("agents")
