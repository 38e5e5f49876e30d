"""Prometheus metrics in the text exposition format, without a client library: counters and gauges.

Ingest counts messages as they pass (labels: kind, reason); ``/metrics`` adds gauges read at
scrape time (queue depth, broker connection, rows in the database).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

Labels = tuple[tuple[str, str], ...]

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
