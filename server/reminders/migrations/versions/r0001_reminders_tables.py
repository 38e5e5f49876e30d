"""reminders tables

Revision ID: r0001
Revises: (none; own version table alembic_version_reminders)
Create Date: 2026-11-25 22:15:05.190255
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'r0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reminder_campaigns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('reminder_contacts',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('postal_address', sa.String(length=300), nullable=True),
    sa.Column('source', sa.String(length=120), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('reminder_false_detections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('truck_id', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('evidence_sha256', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('reported_by', sa.String(length=128), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reminder_false_detections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_false_detections_event_id'), ['event_id'], unique=False)

    op.create_table('reminder_optouts',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('by', sa.String(length=128), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('reminder_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('target_key', sa.String(length=80), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=True),
    sa.Column('address_id', sa.Integer(), nullable=True),
    sa.Column('bin_id', sa.String(length=64), nullable=True),
    sa.Column('lifts', sa.Integer(), nullable=False),
    sa.Column('contaminated', sa.Integer(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reviewed_by', sa.String(length=128), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('review_reason', sa.String(length=32), nullable=True),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('send_detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['reminder_campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_items_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_items_status'), ['status'], unique=False)
        batch_op.create_index('ix_reminder_items_target', ['target_key', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.drop_index('ix_reminder_items_target')
        batch_op.drop_index(batch_op.f('ix_reminder_items_status'))
        batch_op.drop_index(batch_op.f('ix_reminder_items_campaign_id'))

    op.drop_table('reminder_items')
    op.drop_table('reminder_optouts')
    with op.batch_alter_table('reminder_false_detections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_false_detections_event_id'))

    op.drop_table('reminder_false_detections')
    op.drop_table('reminder_contacts')
    op.drop_table('reminder_campaigns')
