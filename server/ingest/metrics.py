"""Prometheus metrics in the text exposition format, without a client library: counters and gauges.

Ingest counts messages as they pass (labels: kind, reason); ``/metrics`` adds gauges read at
scrape time (queue depth, broker connection, rows in the database). A scrape comes every 15 to 60
seconds whatever the size of the database, so the row gauges never count a large table
(``stored_rows``): ``count(*)`` over 100 million lifts reads them all, every scrape.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

from sqlalchemy import Table, func, literal, select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

Labels = tuple[tuple[str, str], ...]
# Below this many rows a gauge is exact: a count that stops there costs a few milliseconds.
EXACT_ROWS_UP_TO = 10_000

HELP = {
    "trivue_ingest_messages_total": ("counter", "MQTT messages received, by kind"),
    "trivue_ingest_lifts_stored_total": ("counter", "Lift events stored for the first time"),
    "trivue_ingest_lifts_duplicate_total": ("counter", "Lift events received again and ignored"),
    "trivue_ingest_evidence_stored_total": ("counter", "Evidence photos stored"),
    "trivue_ingest_dead_letters_total": ("counter", "Messages refused into the dead-letter table, by reason"),
    "trivue_ingest_lifts_unmatched_total": ("counter", "Stored lifts that no street was found for"),
    "trivue_ingest_lifts_rematched_total": ("counter", "Stored provisional lifts moved to another street by "
                                            "their truck's later lifts (aggregates moved with them)"),
    "trivue_ingest_batches_total": ("counter", "Transactions written by ingest"),
    "trivue_ingest_batch_seconds_total": ("counter", "Time spent writing batches"),
    "trivue_ingest_errors_total": ("counter", "Batches that failed to write and were retried"),
    "trivue_ingest_unstored_total": ("counter", "Messages neither stored nor dead-lettered: left unacknowledged "
                                    "to the broker"),
    "trivue_ingest_receipted_total": ("counter", "Lift and photo messages named in receipts to the trucks "
                                      "(stored, duplicate or dead letter)"),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


class Metrics:
    """Thread-safe counters: ingest threads increment, the HTTP thread renders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self, gauges: Mapping[str, tuple[str, Iterable[tuple[Labels, float]]]] | None = None) -> str:
        """The exposition text; ``gauges`` maps a name to (help, [(labels, value)])."""
        lines: list[str] = []
        gauges = gauges or {}
        with self._lock:
            counters = {name: dict(series) for name, series in self._counters.items()}
        for name, (kind, text) in HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            series = counters.get(name) or {(): 0.0}
            lines += [_format(name, labels, value) for labels, value in sorted(series.items())]
        for name, (text, samples) in gauges.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            lines += [_format(name, labels, value) for labels, value in samples]
        return "\n".join(lines) + "\n"


def stored_rows(session: Session, table: Table) -> int:
    """The rows of ``table``: exact up to ``EXACT_ROWS_UP_TO``, an estimate above, read in constant time.

    The estimate is PostgreSQL's own (``pg_class.reltuples`` summed over the partitions, refreshed
    by autovacuum's ANALYZE, so it lags a bulk load by a minute or so) and, on SQLite, the span of
    the row ids (``max(id) - min(id) + 1``, two index lookups): an upper bound, above the truth by
    the rows deleted out of id order (the retention purge goes by ``started_at``, and a truck back
    from days offline sends old lifts late). Never below ``EXACT_ROWS_UP_TO + 1``: the bounded count
    saw that many.
    """
    seen = session.scalar(select(func.count()).select_from(
        select(literal(1)).select_from(table).limit(EXACT_ROWS_UP_TO + 1).subquery())) or 0
    if seen <= EXACT_ROWS_UP_TO:
        return int(seen)
    if session.get_bind().dialect.name == "postgresql":
        # A partitioned table's own reltuples is -1 (or the sum, after an ANALYZE of it): its leaves only.
        estimate = session.scalar(sql(
            "SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0) FROM pg_class c WHERE c.relkind = 'r' AND "
            "(c.oid = to_regclass(:t) OR c.oid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:t)))"), {"t": table.name})
    else:
        # Two subqueries: SQLite reads a lone max() or min() from the index, but both in one SELECT
        # scan the table (0.5 s at 5 million lifts).
        newest = select(func.max(table.c.id)).scalar_subquery()
        oldest = select(func.min(table.c.id)).scalar_subquery()
        estimate = session.scalar(select(newest - oldest + 1))
    return max(int(estimate or 0), int(seen))
