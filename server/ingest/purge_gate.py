"""Ingest batches and the retention purge take turns, so that a lift's copy never outlives its twin.

Exactly-once holds while a lift's stored twin is kept: ingest refuses (``expired``) a copy older
than the raw lifts' retention *when it writes it* (``Inbox.write``). That refusal and the purge must
see one order. A batch that read the clock, then found the twin gone because a purge committed in
between, stored the copy and counted it a second time in the street figures, which the purge keeps.

So a batch holds the purge off from before it reads the clock until it commits, and the purge waits
for the batches in flight and holds the next ones off until it commits: a batch that writes after a
purge also reads the clock after it, and refuses every lift that purge could have deleted.

- PostgreSQL: an advisory transaction lock, shared by ingest batches (server processes and their
  workers ingest side by side) and taken alone by the purge. A waiting purge is served before the
  batches that ask after it, so steady ingest does not starve it.
- SQLite: its single write lock, which a batch takes first thing (a write that changes no row) and
  which the purge's first delete waits for.

Both are taken before any other write of the transaction: a batch that had upserted a photo row and
then waited for a purge that deletes that row would deadlock with it.
"""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from server.ingest.models import Truck

GATE_KEY = 0x7472_6976_7566  # pg_advisory_xact_lock key ("trivuf"; partition upkeep is ...65, migrations ...64)


def hold_off_purge(session: Session) -> None:
    """An ingest batch (or a replay chunk): wait for a purge in progress to commit, then keep the
    next one waiting until this transaction ends. Call before the batch reads the clock."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": GATE_KEY})
    elif dialect == "sqlite":
        session.execute(update(Truck).where(Truck.truck_id.is_(None)).values(truck_id=Truck.truck_id)
                        .execution_options(synchronize_session=False))


def wait_for_ingest(session: Session) -> None:
    """The purge: wait for the ingest batches in flight to commit, then hold the next ones off until
    this transaction ends (a no-op on SQLite, where the purge's first delete waits for the batch)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GATE_KEY})
