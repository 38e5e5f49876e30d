"""street roll-ups by day, month and year; lifts unique on (event_id, started_at); PostgreSQL lifts
partitioned by month; the street network's revision

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 06:10:00

Existing data moves over: the roll-ups are summed from ``street_days`` / ``street_day_errors``
(so days whose raw lifts retention already deleted are kept), and PostgreSQL's ``lifts`` is
copied into a partitioned table with a partition per month of its data (plus the coming months
and a default partition). Lifts are written here as they stand at 0004: a later migration's
columns are its own ``ALTER TABLE lifts ADD COLUMN``, which a partitioned table takes as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from server.ingest.partitions import DEFAULT, MONTHS_AHEAD, create_month, months_between, next_month

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIFT_INDEXES = (('ix_lifts_day', ['day']), ('ix_lifts_started_id', ['started_at', 'id']),
                ('ix_lifts_street_started', ['street_id', 'started_at']),
                ('ix_lifts_truck_started', ['truck_id', 'started_at']))


def _lift_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """``lifts`` as of revision 0004 (0001 plus the evidence reason and boxes)."""
    return [
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('truck_id', sa.String(length=64), nullable=False),
        sa.Column('sequence', sa.BigInteger(), nullable=False),
        sa.Column('stream', sa.String(length=16), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=True),
        sa.Column('lon', sa.Float(), nullable=True),
        sa.Column('accuracy_m', sa.Float(), nullable=True),
        sa.Column('heading_deg', sa.Float(), nullable=True),
        sa.Column('bin_id', sa.String(length=64), nullable=True),
        sa.Column('contaminated', sa.Boolean(), nullable=False),
        sa.Column('has_alert', sa.Boolean(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('errors', sa.JSON(), nullable=False),
        sa.Column('model_name', sa.String(length=128), nullable=False),
        sa.Column('model_version', sa.String(length=64), nullable=False),
        sa.Column('frames', sa.Integer(), nullable=False),
        sa.Column('evidence_sha256', sa.String(length=64), nullable=True),
        sa.Column('street_id', sa.Integer(), nullable=True),
        sa.Column('segment_id', sa.Integer(), nullable=True),
        sa.Column('street_distance_m', sa.Float(), nullable=True),
        sa.Column('address_id', sa.Integer(), nullable=True),
        sa.Column('address_distance_m', sa.Float(), nullable=True),
        sa.Column('match_confidence', sa.Float(), nullable=True),
        sa.Column('evidence_reason', sa.String(length=16), nullable=True),
        sa.Column('evidence_detections', sa.JSON(none_as_null=True), nullable=True),
    ]


def _copy_lifts(old: str, new: sa.Table) -> None:
    names = ", ".join(["id", *(c.name for c in _lift_columns())])
    op.execute(f"INSERT INTO {new.name} ({names}) SELECT {names} FROM {old}")
    op.execute(f"SELECT setval('lifts_id_seq', COALESCE((SELECT MAX(id) FROM {new.name}), 0) + 1, false)")


def _set_aside(name: str, unique: str) -> None:
    """Rename PostgreSQL ``lifts`` and free the names its successor takes (indexes, key, sequence)."""
    op.execute(f"ALTER TABLE lifts RENAME TO {name}")
    op.execute(f"ALTER SEQUENCE lifts_id_seq RENAME TO {name}_id_seq")
    for index, _ in LIFT_INDEXES:
        op.execute(f"DROP INDEX {index}")
    op.execute(f"ALTER TABLE {name} DROP CONSTRAINT lifts_pkey")
    op.execute(f"ALTER TABLE {name} DROP CONSTRAINT {unique}")


def _partition_lifts() -> None:
    bind = op.get_bind()
    _set_aside("lifts_0004", "lifts_event_id_key")
    op.execute("CREATE SEQUENCE lifts_id_seq AS BIGINT")
    lifts = sa.Table('lifts', sa.MetaData(),
                     sa.Column('id', sa.BigInteger(), server_default=sa.text("nextval('lifts_id_seq')"),
                               nullable=False),
                     *_lift_columns(),
                     sa.PrimaryKeyConstraint('id', 'started_at', name='lifts_pkey'),
                     sa.UniqueConstraint('event_id', 'started_at', name='uq_lifts_event_started'),
                     postgresql_partition_by='RANGE (started_at)')
    lifts.create(bind)
    op.execute("ALTER SEQUENCE lifts_id_seq OWNED BY lifts.id")
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF lifts DEFAULT")
    # A partition for every month that holds lifts, last month and the coming ones (as
    # ensure_partitions). Not every month between the oldest lift and the newest: a truck clock at
    # the epoch or years ahead (stored before ingest refused them) made that hundreds of empty
    # partitions, the future ones kept until their date.
    today = datetime.now(UTC).date()
    start = date(today.year - 1, 12, 1) if today.month == 1 else date(today.year, today.month - 1, 1)
    end = today.replace(day=1)
    for _ in range(MONTHS_AHEAD):
        end = next_month(end)
    months = set(months_between(start, end))
    months.update(bind.execute(sa.text(
        "SELECT DISTINCT CAST(date_trunc('month', started_at) AS DATE) FROM lifts_0004")).scalars())
    for month in sorted(months):
        create_month(bind, month)
    _copy_lifts("lifts_0004", lifts)
    op.execute("DROP TABLE lifts_0004")
    for index, columns in LIFT_INDEXES:  # built once after the copy, on every partition
        op.create_index(index, 'lifts', columns, unique=False)


def _unpartition_lifts() -> None:
    bind = op.get_bind()
    _set_aside("lifts_0005", "uq_lifts_event_started")
    lifts = sa.Table('lifts', sa.MetaData(),
                     sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
                     *_lift_columns(), sa.PrimaryKeyConstraint('id'), sa.UniqueConstraint('event_id'))
    lifts.create(bind)
    _copy_lifts("lifts_0005", lifts)
    op.execute("DROP TABLE lifts_0005")  # and its partitions
    for index, columns in LIFT_INDEXES:
        op.create_index(index, 'lifts', columns, unique=False)


# SQLite named nothing in 0001: the convention names the reflected unique constraint to drop it.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _rollup(span: str, dialect: str) -> None:
    """Sum the existing daily aggregates into ``span`` rows (d: every stream only; m, y: each stream and every one)."""
    if span == 'd':
        start = "day"
    elif dialect == "sqlite":
        start = f"date(day, 'start of {'month' if span == 'm' else 'year'}')"
    else:
        start = f"CAST(date_trunc('{'month' if span == 'm' else 'year'}', day) AS DATE)"
    for stream, grouped in ([("'*'", "")] if span == 'd' else [("stream", "stream, "), ("'*'", "")]):
        op.execute(f"""INSERT INTO street_periods (span, stream, start, street_id, lifts, contaminated, alerts, score)
                       SELECT '{span}', {stream}, {start}, street_id, SUM(lifts), SUM(contaminated), SUM(alerts),
                              SUM(score)
                       FROM street_days GROUP BY {grouped}{start}, street_id""")
        op.execute(f"""INSERT INTO street_period_errors (span, stream, start, street_id, category, severity,
                                                        lifts, items)
                       SELECT '{span}', {stream}, {start}, street_id, category, severity, SUM(lifts), SUM(items)
                       FROM street_day_errors GROUP BY {grouped}{start}, street_id, category, severity""")


def upgrade() -> None:
    op.create_table('street_periods',
    sa.Column('span', sa.String(length=1), nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('lifts', sa.Integer(), nullable=False),
    sa.Column('contaminated', sa.Integer(), nullable=False),
    sa.Column('alerts', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('span', 'stream', 'start', 'street_id'),
    sqlite_with_rowid=False,
    )
    op.create_table('street_period_errors',
    sa.Column('span', sa.String(length=1), nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('lifts', sa.Integer(), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('span', 'stream', 'start', 'street_id', 'category', 'severity'),
    sqlite_with_rowid=False,
    )
    op.create_table('street_network',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    dialect = op.get_bind().dialect.name
    for span in ('d', 'm', 'y'):
        _rollup(span, dialect)
    if dialect == "postgresql":
        _partition_lifts()
    else:
        with op.batch_alter_table('lifts', naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('uq_lifts_event_id', type_='unique')
            batch_op.create_unique_constraint('uq_lifts_event_started', ['event_id', 'started_at'])


def downgrade() -> None:
    # Refused (unique violation) when one event_id was stored twice with two start times: only
    # (event_id, started_at) is unique from 0005 on.
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_lifts()
    else:
        with op.batch_alter_table('lifts', naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('uq_lifts_event_started', type_='unique')
            batch_op.create_unique_constraint('uq_lifts_event_id', ['event_id'])
    op.drop_table('street_network')
    op.drop_table('street_period_errors')
    op.drop_table('street_periods')
