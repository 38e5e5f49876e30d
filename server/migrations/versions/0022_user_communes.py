"""users: the communes (codes INSEE) a mairie's account is limited to; NULL for the whole territory

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every existing account keeps seeing the whole territory, as it did.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("communes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # A downgrade widens every scoped account to the whole territory: disable them first
    # (`trivue users disable NAME`) if that must not happen.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("communes")
