"""stored letters: the photos they still hold, when and by whom they were first printed

Revision ID: r0004
Revises: r0003
Create Date: 2026-12-05 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'r0004'
down_revision: str | None = 'r0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('letter_photos', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('printed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('printed_by', sa.String(length=128), nullable=True))
    # Letters sent before: their copy may hold any of the item's photos. The next purge looks at them
    # (server.reminders.letter_photos) and keeps only the photos still kept, by their content.
    op.execute("UPDATE reminder_items SET letter_photos = event_ids WHERE kind = 'household' "
               "AND channel = 'letter' AND status = 'sent' AND event_ids IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('reminder_items', schema=None) as batch_op:
        batch_op.drop_column('printed_by')
        batch_op.drop_column('printed_at')
        batch_op.drop_column('letter_photos')
