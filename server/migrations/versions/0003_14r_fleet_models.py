"""fleet: published models, per-truck assignments, rollouts; api_tokens.truck_id for truck tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 03:05:02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fleet_assignments',
    sa.Column('truck_id', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('reference_sha256', sa.String(length=64), nullable=True),
    sa.Column('previous_sha256', sa.String(length=64), nullable=True),
    sa.Column('rollout_id', sa.BigInteger(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.Column('assigned_by', sa.String(length=128), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('truck_id')
    )
    op.create_table('fleet_models',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('quantised', sa.Boolean(), nullable=False),
    sa.Column('names', sa.JSON(), nullable=False),
    sa.Column('imgsz', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('card', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('published_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('sha256'),
    sa.UniqueConstraint('name', 'version', 'quantised', name='uq_fleet_models_version')
    )
    op.create_table('fleet_rollouts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('canary', sa.JSON(), nullable=False),
    sa.Column('rest', sa.JSON(), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('canary_lifts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('promoted_at', sa.DateTime(), nullable=True),
    sa.Column('promoted_by', sa.String(length=128), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('fleet_rollouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_rollouts_sha256'), ['sha256'], unique=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('truck_id', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('truck_id')

    with op.batch_alter_table('fleet_rollouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fleet_rollouts_sha256'))

    op.drop_table('fleet_rollouts')
    op.drop_table('fleet_models')
    op.drop_table('fleet_assignments')
