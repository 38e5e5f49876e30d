"""labels: why each photo was kept and the model's boxes on it, labelling decisions, frozen dataset splits

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 03:05:31.385918
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Issue 14 (field loop). Only new tables and two nullable columns: lifts stored before keep NULL
    # (no reason, no boxes) and are simply not offered for labelling.
    op.create_table('dataset_splits',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('split', sa.String(length=8), nullable=False),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('label_decisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('annotator', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('box_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.JSON(none_as_null=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('label_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_decisions_event_id'), ['event_id'], unique=False)

    op.create_table('label_photos',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('boxes', sa.JSON(), nullable=False),
    sa.Column('annotator', sa.String(length=128), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('label_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_photos_updated_at'), ['updated_at'], unique=False)

    with op.batch_alter_table('lifts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence_reason', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('evidence_detections', sa.JSON(none_as_null=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('lifts', schema=None) as batch_op:
        batch_op.drop_column('evidence_detections')
        batch_op.drop_column('evidence_reason')

    with op.batch_alter_table('label_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_photos_updated_at'))

    op.drop_table('label_photos')
    with op.batch_alter_table('label_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_decisions_event_id'))

    op.drop_table('label_decisions')
    op.drop_table('dataset_splits')
