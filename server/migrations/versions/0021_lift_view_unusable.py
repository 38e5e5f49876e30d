"""lifts: the camera's view was unusable (wire 1.4); the data-quality page counts such lifts

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds it to the partitioned ``lifts`` (every month partition)
    # without a rewrite. Every stored lift came from a truck that did not measure its view: NULL,
    # judged as it was, so no aggregate changes here.
    op.add_column("lifts", sa.Column("view_unusable", sa.String(16), nullable=True))
    op.add_column("match_quality_days", sa.Column("view_unusable", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    # The lifts not judged then count as judged again: rebuild the aggregates (``trivue aggregates``).
    op.drop_column("match_quality_days", "view_unusable")
    op.drop_column("lifts", "view_unusable")
