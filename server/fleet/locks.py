"""What the fleet's writers hold so that two at once do not undo each other.

- A truck's row (``locked_truck``): whatever reads a truck's stored config or assignment and writes
  it back (a config change, ``assign``, ``publish_pending``) holds it until its commit, so that a
  second one reads the first's change instead of writing over it.
- The rollouts (``hold_rollouts``): starting, confirming, advancing and rolling back read which
  rollout is open and change it; two at once both read "none open" and both left a rollout at the
  canary stage. PostgreSQL: an advisory transaction lock; SQLite: its single write lock.

Both are taken before the transaction's other writes (a rollout's first, then its trucks' rows, one
by one), so that no two transactions wait for each other.
"""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from server.fleet.models import Rollout
from server.ingest.aggregates import dialect_insert
from server.ingest.models import Truck, TruckStatus

# pg_advisory_xact_lock key of the rollouts ("trivug"; migrations ...64, partitions ...65, purge gate ...66)
ROLLOUTS_KEY = 0x7472_6976_7567


def locked_truck(session: Session, truck_id: str) -> Truck:
    """The truck's row, made if missing and held until the commit (two first configs of a truck both
    inserted its row before, and the second failed after its config had gone out)."""
    # A write first: on SQLite it opens the write transaction (readers never wait, writers queue),
    # on PostgreSQL it waits for another request's uncommitted row instead of failing on its key.
    session.execute(
        dialect_insert(session, Truck.__table__)
        .values(truck_id=truck_id, status=TruckStatus.unknown.value)
        .on_conflict_do_nothing(index_elements=["truck_id"])
    )
    truck = session.get(Truck, truck_id, with_for_update=True, populate_existing=True)
    assert truck is not None  # inserted above, or there already
    return truck


def hold_rollouts(session: Session) -> None:
    """Wait for another rollout change in progress to commit, then hold the next ones off until this
    transaction ends. Call before reading which rollout is open."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLOUTS_KEY})
    elif dialect == "sqlite":  # a write that changes no row: pysqlite begins, SQLite takes its write lock
        session.execute(
            update(Rollout)
            .where(Rollout.id.is_(None))
            .values(state=Rollout.state)
            .execution_options(synchronize_session=False)
        )
