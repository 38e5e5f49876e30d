"""bins, lifts: RFID tags in their canonical form (base.bin_tags)

Tags were stored as written: the registry's as its file spelled them, the lifts' as each truck's
reader printed them (``04a1b2c3`` beside a registered ``04A1B2C3``), so a lift could miss its bin.
Both are brought to the canonical form the import and the ingest now write. Two spellings of one
tag in the registry are one bin: the row imported last is kept (a re-import is the newer
inventory). The reminders' household keys follow in their own tree (r0007).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from base.bin_tags import canonical_tag

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bins(bind: sa.Connection) -> None:
    spellings: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for tag, imported_at in bind.execute(sa.text("SELECT tag, imported_at FROM bins")):
        spellings[canonical_tag(tag)].append((imported_at, tag))
    for canonical, rows in spellings.items():
        if [tag for _, tag in rows] == [canonical]:
            continue
        kept = max(rows, key=lambda row: (row[0], row[1] == canonical))[1]
        others = [tag for _, tag in rows if tag != kept]
        if others:
            bind.execute(sa.text("DELETE FROM bins WHERE tag IN :tags").bindparams(
                sa.bindparam("tags", expanding=True)), {"tags": others})
        if kept != canonical:
            bind.execute(sa.text("UPDATE bins SET tag = :canonical WHERE tag = :tag"),
                         {"canonical": canonical, "tag": kept})


def _lifts(bind: sa.Connection) -> None:
    # One pass over the distinct tags (only household-level lifts keep one: 0020's partial index),
    # then an update per tag spelled otherwise: most readers print upper case, so few updates.
    tags = bind.execute(sa.text("SELECT DISTINCT bin_id FROM lifts WHERE bin_id IS NOT NULL")).scalars().all()
    for tag in tags:
        if (canonical := canonical_tag(tag)) != tag:
            bind.execute(sa.text("UPDATE lifts SET bin_id = :canonical WHERE bin_id = :tag"),
                         {"canonical": canonical, "tag": tag})


def upgrade() -> None:
    bind = op.get_bind()
    _bins(bind)
    _lifts(bind)


def downgrade() -> None:
    # The spellings replaced are not kept: the canonical form is a tag's only meaning, and every
    # earlier version compares tags as stored, which still works on tags written one way.
    pass
