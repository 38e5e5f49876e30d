"""lifts: placed by the bin registry, kept when the tag is not (street level at ingest)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# server.ingest.bins.bin_columns at this revision: the registry puts a lift on its tag's address, certain.
PLACED = """UPDATE lifts SET registry_placed = TRUE
WHERE bin_id IS NOT NULL AND address_id IS NOT NULL AND match_confidence = 1.0
  AND EXISTS (SELECT 1 FROM bins WHERE bins.tag = lifts.bin_id AND bins.address_id = lifts.address_id)"""


def upgrade() -> None:
    # ADD COLUMN with a constant default: PostgreSQL runs it on the partitioned ``lifts`` (cascading
    # to every month partition, no rewrite), SQLite without rebuilding the table (as 0006).
    op.add_column("lifts", sa.Column("registry_placed", sa.Boolean(), server_default=sa.false(), nullable=False))
    # The stored lifts still carry their tag: those the registry placed are the ones at their tag's
    # address with the registry's certainty. A bin moved since reads as placed by its fix, as a
    # rematch (which reads the tag against the registry of the day) would have it anyway.
    op.execute(PLACED)


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place. Lifts stored at street level (no tag) then lose what
    # kept them on the registry's street: a rematch at this revision moves them by their fix.
    op.drop_column("lifts", "registry_placed")
