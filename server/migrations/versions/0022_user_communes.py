"""users: the communes (codes INSEE) a mairie's account is limited to; NULL for the whole territory

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every existing account keeps seeing the whole territory, as it did.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("communes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # Checked before any op: a refusal leaves the table as it was (PostgreSQL would roll back anyway;
    # SQLite's batch rebuild must not have begun).
    refuse_while_limited()
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("communes")


def refuse_while_limited() -> None:
    """Refuse to drop the column while it limits an account: the old schema has none, so each would
    see every commune's streets and figures (a manager, the households too).

    Disabled accounts block as well: ``trivue users enable`` (in the old version too) would bring one
    back seeing every commune. What lets the downgrade through is the scope lifted by hand
    (``trivue users communes NAME --all``), a decision the audit log keeps, or a restore.
    """
    names = op.get_bind().execute(sa.text(
        "SELECT name FROM users WHERE communes IS NOT NULL ORDER BY name")).scalars().all()
    if not names:
        return
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    accounts = "1 account" if len(names) == 1 else f"{len(names)} accounts"
    raise CommandError(
        f"0022: {accounts} limited to communes would see every commune after this downgrade, a disabled "
        f"one once enabled again ({shown}); nothing was changed. Restore the backup taken before the "
        "upgrade, or disable each (trivue users disable NAME) and lift its limit (trivue users communes "
        "NAME --all) before downgrading again")
