"""api_tokens: the communes (codes INSEE) a mairie's integration token is limited to; NULL for the whole territory

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every existing token keeps seeing the whole territory, as it did (0022's rule
    # for accounts).
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("communes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # Checked before any op: a refusal leaves the table as it was (PostgreSQL would roll back anyway;
    # SQLite's batch rebuild must not have begun).
    refuse_while_limited()
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("communes")


def refuse_while_limited() -> None:
    """Refuse to drop the column while it limits a token still valid: the old schema has none, so each
    would see every commune.

    Revoked tokens do not block, unlike 0022's disabled accounts: no command, in any version, takes a
    revocation back, so a revoked token grants nothing before the downgrade or after.
    """
    tokens = op.get_bind().execute(sa.text(
        "SELECT id, name FROM api_tokens WHERE communes IS NOT NULL AND revoked_at IS NULL ORDER BY id")).all()
    if not tokens:
        return
    shown = ", ".join(f"{token_id} ({name})" for token_id, name in tokens[:10])
    shown += f" and {len(tokens) - 10} more" if len(tokens) > 10 else ""
    count = "1 token" if len(tokens) == 1 else f"{len(tokens)} tokens"
    raise CommandError(
        f"0025: {count} limited to communes would see every commune after this downgrade "
        f"(id{'s' if len(tokens) > 1 else ''} {shown}); nothing was changed. Revoke them (trivue tokens "
        "revoke ID; create a new token after the downgrade if an integration needs one) or restore the "
        "backup taken before the upgrade, then downgrade again")
