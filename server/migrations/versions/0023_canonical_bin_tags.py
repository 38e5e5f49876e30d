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

import logging
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
log = logging.getLogger("server.migrate")


def _bins(bind: sa.Connection) -> tuple[int, int]:
    """The registry's tags in the canonical form; returns the rows respelled and those deleted."""
    spellings: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for tag, imported_at in bind.execute(sa.text("SELECT tag, imported_at FROM bins")):
        spellings[canonical_tag(tag)].append((imported_at, tag))
    deleted: list[dict[str, str]] = []
    respelled: list[dict[str, str]] = []
    for canonical, rows in spellings.items():
        if [tag for _, tag in rows] == [canonical]:
            continue
        # Rows of one file share their import time: then the canonical spelling, then any one, but
        # the same on every database (the scan's order is not).
        kept = max(rows, key=lambda row: (row[0], row[1] == canonical, row[1]))[1]
        deleted += [{"tag": tag} for _, tag in rows if tag != kept]
        if kept != canonical:
            respelled.append({"canonical": canonical, "tag": kept})
    # Every other spelling deleted first: a canonical tag is then free for its kept row (one
    # statement each, sent as one batch: a whole registry spelled otherwise is ~100,000 rows).
    if deleted:
        bind.execute(sa.text("DELETE FROM bins WHERE tag = :tag"), deleted)
    if respelled:
        bind.execute(sa.text("UPDATE bins SET tag = :canonical WHERE tag = :tag"), respelled)
    return len(respelled), len(deleted)


def _lifts(bind: sa.Connection) -> tuple[int, int]:
    """The lifts' tags in the canonical form; returns the spellings replaced and the lifts rewritten."""
    # One read of the distinct tags (only household-level lifts keep one: 0020's partial index),
    # then one UPDATE joined to a temporary table of the tags spelled otherwise. ``lifts.bin_id`` has
    # no index: an UPDATE per tag read every lift (every partition) each time, 0.43 s on 2 million
    # lifts, so ~107 min for the 15,000 spellings of one reader printing lower case, against ~20 s
    # (docs/deployment.md, "Upgrading").
    tags = bind.execute(sa.text("SELECT DISTINCT bin_id FROM lifts WHERE bin_id IS NOT NULL")).scalars().all()
    renames = [{"tag": tag, "canonical": canonical} for tag in tags if (canonical := canonical_tag(tag)) != tag]
    if not renames:
        return 0, 0
    bind.execute(sa.text("CREATE TEMPORARY TABLE bin_tag_renames "
                         "(tag VARCHAR(64) PRIMARY KEY, canonical VARCHAR(64) NOT NULL)"))
    bind.execute(sa.text("INSERT INTO bin_tag_renames (tag, canonical) VALUES (:tag, :canonical)"), renames)
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("ANALYZE bin_tag_renames"))  # autovacuum never sees a temporary table
    # Portable (no UPDATE ... FROM before SQLite 3.33); PostgreSQL hash-joins it, one read of lifts.
    rewritten = bind.execute(sa.text(
        "UPDATE lifts SET bin_id = (SELECT canonical FROM bin_tag_renames r WHERE r.tag = lifts.bin_id) "
        "WHERE bin_id IN (SELECT tag FROM bin_tag_renames)")).rowcount
    bind.execute(sa.text("DROP TABLE bin_tag_renames"))  # else kept by the connection until it closes
    return len(renames), rewritten


def upgrade() -> None:
    bind = op.get_bind()
    respelled, deleted = _bins(bind)
    spellings, lifts = _lifts(bind)
    # Irreversible (see downgrade): said beside the upgrade's own line, which `trivue` shows by default.
    if respelled or deleted or lifts:
        (log.warning if deleted else log.info)(
            "0023: bin tags in the canonical form: %d registry rows respelled, %d deleted as another spelling of "
            "a tag (the row imported last kept), %d lifts rewritten (%d spellings)", respelled, deleted, lifts,
            spellings)


def downgrade() -> None:
    # The spellings replaced are not kept: the canonical form is a tag's only meaning, and every
    # earlier version compares tags as stored, which still works on tags written one way.
    pass
