"""audit log: indexes for the journal's filters (action, actor, target, newest first)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {"ix_audit_log_action_id": ["action", "id"], "ix_audit_log_actor_id": ["actor", "id"],
           "ix_audit_log_target_id": ["target", "id"]}


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
