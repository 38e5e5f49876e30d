"""household keys ``bin:<tag>``: the tag in its canonical form (base.bin_tags), as the lifts hold it

The core migration 0023 brings the lifts' and the registry's tags to the canonical form; keys
written before with another spelling (``bin:04a1b2c3``) would no longer name their household: an
opt-out would be ignored, a contact lost, an item's history (cooldown, escalation) cut. Two
spellings of one household become one: its opt-out dates from the first request, its contact is
the one updated last.

Revision ID: r0007
Revises: r0006
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from base.bin_tags import canonical_tag

revision: str = "r0007"
down_revision: str | None = "r0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
log = logging.getLogger("server.migrate")


def _canonical_key(key: str) -> str:
    kind, colon, value = key.partition(":")
    return f"bin:{canonical_tag(value)}" if kind == "bin" and colon else key


def _merge(bind: sa.Connection, table: str, column: str, first: bool) -> int:
    """Keys of ``table`` in the canonical form; of two spellings of one, the row whose ``column``
    is earliest (``first``) or latest is kept. Returns the rows deleted."""
    spellings: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    deleted = 0
    for key, when in bind.execute(sa.text(f"SELECT key, {column} FROM {table} WHERE key LIKE 'bin:%'")):
        spellings[_canonical_key(key)].append((when, key))
    for canonical, rows in spellings.items():
        if [key for _, key in rows] == [canonical]:
            continue
        rows.sort(key=lambda row: (row[0], row[1] != canonical), reverse=not first)
        kept = rows[0][1]
        for _, key in rows[1:]:
            bind.execute(sa.text(f"DELETE FROM {table} WHERE key = :key"), {"key": key})
            deleted += 1
        if kept != canonical:
            bind.execute(sa.text(f"UPDATE {table} SET key = :canonical WHERE key = :key"),
                         {"canonical": canonical, "key": kept})
    return deleted


def _items(bind: sa.Connection) -> None:
    rows = bind.execute(sa.text("SELECT DISTINCT target_key, bin_id FROM reminder_items WHERE bin_id IS NOT NULL"))
    for key, tag in rows.all():
        if (_canonical_key(key), canonical_tag(tag)) != (key, tag):
            bind.execute(sa.text("UPDATE reminder_items SET target_key = :new_key, bin_id = :new_tag "
                                 "WHERE target_key = :key AND bin_id = :tag"),
                         {"new_key": _canonical_key(key), "new_tag": canonical_tag(tag), "key": key, "tag": tag})


def _exclusions(bind: sa.Connection) -> None:
    """The campaigns' recorded rules: an erasure looks for the household's tag among their exclusions."""
    for campaign, raw in bind.execute(sa.text("SELECT id, rules FROM reminder_campaigns")).all():
        rules = json.loads(raw) if isinstance(raw, str) else raw
        bins = ((rules or {}).get("exclude") or {}).get("bins") or []
        canonical = [canonical_tag(tag) if isinstance(tag, str) else tag for tag in bins]
        if canonical != bins:
            rules = {**rules, "exclude": {**rules["exclude"], "bins": canonical}}
            bind.execute(sa.text("UPDATE reminder_campaigns SET rules = :rules WHERE id = :id")
                         .bindparams(sa.bindparam("rules", type_=sa.JSON())), {"rules": rules, "id": campaign})


def upgrade() -> None:
    bind = op.get_bind()
    optouts = _merge(bind, "reminder_optouts", "at", first=True)
    contacts = _merge(bind, "reminder_contacts", "updated_at", first=False)
    if optouts or contacts:  # irreversible: the rows deleted are in the backup only (docs/deployment.md)
        log.warning("r0007: household keys in the canonical form: %d opt-outs and %d contacts deleted as another "
                    "spelling of a household's key (the first opt-out and the last updated contact kept)",
                    optouts, contacts)
    _items(bind)
    _exclusions(bind)


def downgrade() -> None:
    # The spellings replaced are not kept; earlier versions compare keys as stored, which works.
    pass
