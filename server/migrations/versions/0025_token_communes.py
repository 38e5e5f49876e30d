"""api_tokens: the communes (codes INSEE) a mairie's integration token is limited to; NULL for the whole territory

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every existing token keeps seeing the whole territory, as it did (0022's rule
    # for accounts).
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("communes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # A downgrade widens every scoped token to the whole territory: revoke them first
    # (`trivue tokens revoke ID`) if that must not happen.
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("communes")
