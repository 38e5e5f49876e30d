"""lift model file: the SHA-256 of the ONNX file that judged each lift (wire 1.2)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain nullable ADD COLUMN, as 0006: PostgreSQL runs it on the partitioned ``lifts`` (cascading
    # to every month partition, no rewrite) and SQLite without rebuilding the table. Lifts stored
    # before named no file: they stay NULL, and the rollout counts them as it did (server.fleet.canary).
    op.add_column('lifts', sa.Column('model_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place; batch mode would rebuild the table.
    op.drop_column('lifts', 'model_sha256')
