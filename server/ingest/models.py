"""The ingest's tables: lifts, trucks, dead letters, evidence and the street aggregates.

Streets, segments and addresses live in ``server.streets.models``, users and the audit trail in
``server.web.accounts``, all on the same ``Base``. Timestamps are
stored as naive UTC (SQLite has no time zone type) and come back aware through ``UtcDateTime``.
Aggregates use ``street_id = 0`` for lifts matched to no street: a composite primary key cannot
hold NULL, and unmatched lifts must still be counted.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigId, UtcDateTime


class TruckStatus(StrEnum):
    """A truck's last status message (retained ``online``/``offline``/``stopped``); ``unknown`` before any."""

    online = "online"
    offline = "offline"
    stopped = "stopped"
    unknown = "unknown"


UNMATCHED = 0  # street_id of aggregates for lifts that no street was found for
# The predicate of the partial index ``ix_lifts_provisional``, written as the index writes it.
# SQLite uses a partial index only for a WHERE term identical to the index's own, and SQLAlchemy
# writes ``Lift.match_provisional`` as ``lifts.match_provisional = 1`` there: the provisional
# lifts were then read through the truck's whole history (0.6 s a batch at 25,000 lifts a truck).
_PROVISIONAL_WHERE = "match_provisional"
PROVISIONAL = text(f"lifts.{_PROVISIONAL_WHERE}")
# Lifts whose street stays uncertain (``server.streets.trajectory.AMBIGUOUS``: a street posterior
# from the truck's path under 0.8, or a one-point street confidence for a lift matched without a
# path): a few per cent, listed on the data-quality page through their
# partial indexes ``ix_lifts_ambiguous_by_*``, written as those indexes write it (see PROVISIONAL).
# Judged lifts only, those counted in their likeliest street: not one whose camera view was unusable
# (migration 0024; the histogram of ``server.ingest.quality`` bins every matched lift).
_AMBIGUOUS_WHERE = "street_confidence < 0.8 AND view_unusable IS NULL"
# Lifts still holding a bin tag or an address: every lift at household level, none once the retention
# purge has passed at street level (``server.ingest.street_level.clear_stored``, docs/privacy.md §1 bis).
HOUSEHOLD_WHERE = "bin_id IS NOT NULL OR address_id IS NOT NULL OR address_distance_m IS NOT NULL"
AMBIGUOUS_LIFTS = text("lifts.street_confidence < 0.8 AND lifts.view_unusable IS NULL")  # _AMBIGUOUS_WHERE's terms
ALL_STREAMS = "*"  # stream of the roll-up rows that add up every stream (``StreetPeriod``)


class Lift(Base):
    """One bin lift as reported by a truck, with the street and address it was matched to."""

    __tablename__ = "lifts"
    # Exactly-once key: ``(event_id, started_at)``. On PostgreSQL ``lifts`` is partitioned by month
    # of ``started_at`` (``server.ingest.partitions``) and a unique key must hold the partition
    # key; a re-delivered event carries the same ``started_at``, so it meets its twin in the same
    # partition however late it comes.
    __table_args__ = (
        UniqueConstraint("event_id", "started_at", name="uq_lifts_event_started"),
        Index("ix_lifts_street_started", "street_id", "started_at"),
        Index("ix_lifts_truck_started", "truck_id", "started_at"),
        Index("ix_lifts_started_id", "started_at", "id"),
        # Few rows (a truck's last lifts, waiting for the next ones): the trajectory step of every
        # batch reads them by truck (``server.ingest.tracks``).
        Index("ix_lifts_provisional", "truck_id", "started_at", postgresql_where=text(_PROVISIONAL_WHERE),
              sqlite_where=text(_PROVISIONAL_WHERE)),
        # The data-quality page's ambiguous lifts, a few per cent: by street for all time (its
        # default), by day for a period; with one of them only, SQLite reads every lift of the other.
        Index("ix_lifts_ambiguous_by_street", "street_id", "day", postgresql_where=text(_AMBIGUOUS_WHERE),
              sqlite_where=text(_AMBIGUOUS_WHERE)),
        Index("ix_lifts_ambiguous_by_day", "day", "street_id", postgresql_where=text(_AMBIGUOUS_WHERE),
              sqlite_where=text(_AMBIGUOUS_WHERE)),
        # What the purge's street-level pass looks for (an empty index once it has run, migration 0020).
        Index("ix_lifts_household", "id", postgresql_where=text(HOUSEHOLD_WHERE), sqlite_where=text(HOUSEHOLD_WHERE)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    truck_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    stream: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    day: Mapped[date] = mapped_column(Date, index=True, doc="Local collection day (settings.timezone)")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    bin_id: Mapped[str | None] = mapped_column(String(64))
    contaminated: Mapped[bool] = mapped_column(Boolean)
    has_alert: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float] = mapped_column(Float)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    # The ONNX file that judged the lift (wire 1.2): its INT8 and FP32 files share a name and version.
    # None for lifts of older trucks (and before migration 0011).
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    frames: Mapped[int] = mapped_column(Integer)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    evidence_reason: Mapped[str | None] = mapped_column(String(16), doc="contaminated | sample | uncertain | view")
    # The model's boxes on the photo (wire 1.1), as sent; None for a 1.0 truck, whose boxes are drawn
    # on the photo itself (such photos are not offered for labelling).
    evidence_detections: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    street_id: Mapped[int | None] = mapped_column(Integer)
    segment_id: Mapped[int | None] = mapped_column(Integer)
    street_distance_m: Mapped[float | None] = mapped_column(Float)
    address_id: Mapped[int | None] = mapped_column(Integer)
    address_distance_m: Mapped[float | None] = mapped_column(Float)
    match_confidence: Mapped[float | None] = mapped_column(Float)
    # Trajectory matching (``server.ingest.tracks``): the posterior of the street given the truck's
    # path, and whether the street may still change when the truck's next lifts arrive.
    street_confidence: Mapped[float | None] = mapped_column(Float)
    match_provisional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The bin registry put the lift on its street (``server.ingest.bins``), not its fix: kept when the
    # tag is not (household level off, docs/privacy.md §1 bis), so a rematch leaves it on that street.
    registry_placed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A person judged the truck wrong (``server.ingest.overrule``): the lift then counts as clean in
    # every aggregate, while the columns above keep the judgement as the truck sent it.
    overruled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overruled_by: Mapped[str | None] = mapped_column(String(128), doc="The actor, e.g. user:name")
    overrule_reason: Mapped[str | None] = mapped_column(String(300))
    # The camera's view was unusable (wire 1.4: dark, bright, flat, blurred, frozen): the lift was not
    # judged and counts in no street figure, only on the data-quality page (``server.ingest.quality``).
    view_unusable: Mapped[str | None] = mapped_column(String(16))


class StreetDay(Base):
    """Lifts per street, local day and stream; kept up to date by every ingest batch."""

    __tablename__ = "street_days"
    # Dashboard periods filter on days across every street: without it PostgreSQL scans the whole
    # table (a year of a city is ~300,000 rows). SQLite's planner prefers the primary key there.
    __table_args__ = (Index("ix_street_days_day_stream", "day", "stream"),)

    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    lifts: Mapped[int] = mapped_column(Integer, default=0)
    contaminated: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float, default=0.0)


class StreetDayError(Base):
    """Lifts and items per street, day, stream, error category and severity (info included)."""

    __tablename__ = "street_day_errors"
    __table_args__ = (Index("ix_street_day_errors_day", "day"),)  # same reason, ~4 rows per street-day

    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    severity: Mapped[str] = mapped_column(String(8), primary_key=True)
    lifts: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)


class MatchQualityDay(Base):
    """Lifts per local day and stream by how well they were matched to a street: the counts and
    the match-confidence histogram of the data-quality page, kept by the same ingest upserts as
    ``street_days`` (``server.ingest.quality``), so a year reads ~1,500 rows, not every lift."""

    __tablename__ = "match_quality_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    lifts: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)  # on a street
    no_gps: Mapped[int] = mapped_column(Integer, default=0)  # unmatched for want of a fix
    view_unusable: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # not judged (wire 1.4)
    # Matched lifts by street confidence (server.ingest.quality), in tenths: conf_0 [0, 0.1), conf_9 [0.9, 1].
    conf_0: Mapped[int] = mapped_column(Integer, default=0)
    conf_1: Mapped[int] = mapped_column(Integer, default=0)
    conf_2: Mapped[int] = mapped_column(Integer, default=0)
    conf_3: Mapped[int] = mapped_column(Integer, default=0)
    conf_4: Mapped[int] = mapped_column(Integer, default=0)
    conf_5: Mapped[int] = mapped_column(Integer, default=0)
    conf_6: Mapped[int] = mapped_column(Integer, default=0)
    conf_7: Mapped[int] = mapped_column(Integer, default=0)
    conf_8: Mapped[int] = mapped_column(Integer, default=0)
    conf_9: Mapped[int] = mapped_column(Integer, default=0)


class StreetPeriod(Base):
    """Lifts per street over a whole day, month or year: the roll-ups period queries read.

    Kept up to date by the same ingest upsert as ``street_days`` (``server.ingest.rollups``). A
    period is summed from whole years, whole months and only its edge days
    (``server.web.periods``), so a year of a city reads ~1,500 rows per street measure instead of
    ~300,000 daily ones. Rows with ``stream = '*'`` (``ALL_STREAMS``) add up every stream: the
    unfiltered query reads them instead of four rows per street. Days are kept for ``'*'`` only
    (one stream's days are ``street_days``). Summing over every row would count each lift several
    times: always filter on ``span`` and ``stream``.
    """

    __tablename__ = "street_periods"
    # SQLite: the rows live in the primary key's b-tree, so a period's range scan reads the sums
    # without a second lookup per row (bench/queries.py, a month of Rennes: 32 -> 21 ms CPU).
    __table_args__ = ({"sqlite_with_rowid": False},)

    span: Mapped[str] = mapped_column(String(1), primary_key=True, doc="d (day), m (month) or y (year)")
    stream: Mapped[str] = mapped_column(String(16), primary_key=True, doc="a stream, or * for every stream")
    start: Mapped[date] = mapped_column(Date, primary_key=True, doc="first local day of the day, month or year")
    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lifts: Mapped[int] = mapped_column(Integer, default=0)
    contaminated: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float, default=0.0)


class StreetPeriodError(Base):
    """Lifts and items per street, error category and severity over a day, month or year (as ``StreetPeriod``)."""

    __tablename__ = "street_period_errors"
    __table_args__ = ({"sqlite_with_rowid": False},)  # as StreetPeriod

    span: Mapped[str] = mapped_column(String(1), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    street_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    severity: Mapped[str] = mapped_column(String(8), primary_key=True)
    lifts: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)


class Truck(Base):
    """Last known state of a truck: MQTT status, last message, last stats heartbeat."""

    __tablename__ = "trucks"

    truck_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stats_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="Config last published to the truck")
    # The start times of the agents heard under this id lately (``server.ingest.truck_state``): two agents
    # sharing one id (a copied configuration) alternate between theirs.
    agents: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="Recent agent start times, two agents seen")


DEAD_LETTER_BYTES = 4096  # enough to see what went wrong, not enough to keep a photo
# Letters larger than that: those held whole for a replay (``server.ingest.letters``) are among
# them, summed against ``dead_letter_held_bytes`` through a partial index written as it is here
# (SQLite uses a partial index only for a WHERE term identical to its own, see PROVISIONAL).
_LARGE_WHERE = f"payload_size > {DEAD_LETTER_BYTES}"
LARGE_LETTERS = text(f"dead_letters.{_LARGE_WHERE}")


class DeadLetter(Base):
    """A message that could not be stored, with the reason and its first bytes (whole when held for
    a replay, ``server.ingest.letters``)."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_large", "payload_size", postgresql_where=text(_LARGE_WHERE),
              sqlite_where=text(_LARGE_WHERE)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    topic: Mapped[str] = mapped_column(String(512))
    truck_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32), doc="Machine-readable code, also a metrics label")
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary, doc="First bytes of the message, or all of them")
    payload_size: Mapped[int] = mapped_column(Integer)
    # A refused lift's own date, when its payload could be read: the retention purges its letter with
    # the raw lifts (it holds their GPS fix and bin tag). None for other messages and before 0013.
    lift_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class Evidence(Base):
    """A privacy-blurred photo of a lift (contaminated, sampled or uncertain), on disk under the evidence folder."""

    __tablename__ = "evidence"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    truck_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512), doc="Relative to settings.evidence_path")
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DatabaseSetting(Base):
    """A fact the stored data depends on, kept in the database beside that data (one row per name):
    ``timezone``, the zone the local collection days were computed in (``server.ingest.day_zone``).
    A setting in the server's file can change under data written with the old value; this row
    says which value the data holds."""

    __tablename__ = "database_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
