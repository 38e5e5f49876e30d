"""rollout reasons: a code and its parameters beside the English text, for the dashboard's languages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:10:00
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sentences server/fleet/rollout.py wrote up to 0006, copied here (a migration must not change
# when the code does). A reason none of them matches keeps its text under the code 'other'.
PATTERNS = (
    ('superseded', re.compile(r"superseded by a rollout of (?P<name>.+) (?P<version>\S+)")),
    ('confirmed', re.compile(r"confirmed by (?P<actor>.+)")),
    ('canary_refused', re.compile(r"canary (?P<truck>\S+) refused the model: (?P<detail>.*)", re.DOTALL)),
    ('ingest_refused', re.compile(r"ingest refused (?P<count>\d+) message\(s\) from the canaries since the rollout "
                                  r"began \(see dead letters\)")),
    ('canaries_clean', re.compile(r"every canary sent at least (?P<lifts>\d+) lifts with the model, none refused: "
                                  r"(?P<counts>\{.*\})")),
    ('rolled_back', re.compile(r"rolled back by (?P<actor>.+?)(?:; previous model unknown for (?P<unknown>\[.*\]))?")),
)
# The edge's refusals as server/fleet/reasons.py knew them at 0007.
REFUSAL_KINDS = {
    "download": ("download impossible:", "download refused:", "download failed:"),
    "hash": ("wrong hash:",),
    "unusable": ("not a usable model:",),
    "metadata": ("the file's metadata name",),
    "rules": ("classes without rules:",),
    "selfcheck": ("self-check impossible:", "self-check failed:"),
    "check": ("check failed:",),
}


def _literal(text: str) -> Any:
    """A dict or list the old sentence wrote with Python's repr; None when it is not one."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def code_of(reason: str) -> tuple[str, dict[str, Any]]:
    """The code and parameters of a reason written up to 0006; ('other', {}) when none fits."""
    for code, pattern in PATTERNS:
        found = pattern.fullmatch(reason)
        if found is None:
            continue
        params: dict[str, Any] = {k: v for k, v in found.groupdict().items() if k != 'unknown'}
        if code == 'canary_refused':
            # The old sentence wrote a missing reason as "None".
            detail = None if params['detail'] == "None" else params['detail']
            params['detail'] = detail
            params['refusal'] = next((kind for kind, starts in REFUSAL_KINDS.items()
                                      if detail and detail.startswith(starts)), None)
        elif code == 'ingest_refused':
            params['count'] = int(params['count'])
        elif code == 'canaries_clean':
            counts = _literal(params['counts'])
            if not isinstance(counts, dict):
                continue
            params['lifts'], params['counts'] = int(params['lifts']), counts
        elif code == 'rolled_back':
            unknown = _literal(found['unknown']) if found['unknown'] else []
            if not isinstance(unknown, list):
                continue
            params['unknown'] = unknown
        return code, params
    return 'other', {}


def upgrade() -> None:
    op.add_column('fleet_rollouts', sa.Column('reason_code', sa.String(length=32), nullable=True))
    op.add_column('fleet_rollouts', sa.Column('reason_params', sa.JSON(), nullable=True))
    rollouts = sa.table('fleet_rollouts', sa.column('id', sa.BigInteger()), sa.column('reason', sa.Text()),
                        sa.column('reason_code', sa.String()), sa.column('reason_params', sa.JSON()))
    connection = op.get_bind()
    # Rollouts are few (one per model release): row by row is fine. Their text stays as it was.
    for row_id, reason in connection.execute(sa.select(rollouts.c.id, rollouts.c.reason)
                                             .where(rollouts.c.reason.is_not(None))).all():
        code, params = code_of(reason)
        connection.execute(rollouts.update().where(rollouts.c.id == row_id)
                           .values(reason_code=code, reason_params=params))


def downgrade() -> None:
    # The English text was kept: nothing is lost. SQLite (3.35+) drops a column in place.
    op.drop_column('fleet_rollouts', 'reason_params')
    op.drop_column('fleet_rollouts', 'reason_code')
