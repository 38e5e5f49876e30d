"""login throttle in the database: failed logins and trusted addresses, shared by every server process

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: nothing to copy (the old throttle's counts lived in each process's memory).
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_address_at", ["address", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failures_at"), ["at"], unique=False)
        batch_op.create_index("ix_login_failures_name_at", ["name_hash", "at"], unique=False)

    op.create_table(
        "login_trusted",
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name_hash", "address"),
    )
    with op.batch_alter_table("login_trusted", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_trusted_last_at"), ["last_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_trusted", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_trusted_last_at"))

    op.drop_table("login_trusted")
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_name_at")
        batch_op.drop_index(batch_op.f("ix_login_failures_at"))
        batch_op.drop_index("ix_login_failures_address_at")

    op.drop_table("login_failures")
