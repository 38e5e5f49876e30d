"""An ingest write path without a broker: messages go straight to ``Ingest._write``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from server.config import ServerSettings, load_settings
from server.db import make_engine, utcnow
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence, Lift
from server.ingest.subscriber import Ingest
from server.migrate import upgrade_database

PREFIX = "trivue/v1"


class Harness:
    """An Ingest that is never connected: batches go straight to its write path."""

    def __init__(self, url: str, data: Path, **overrides: object) -> None:
        self.settings: ServerSettings = load_settings(env={}, data_dir=data, database_url=url,
                                                      topic_prefix=PREFIX, ingest_batch_size=10, **overrides)
        engine = make_engine(self.settings.db_url)
        upgrade_database(engine)
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.metrics = Metrics()
        self.evidence = EvidenceStore(self.settings.evidence_path, self.settings.max_evidence_bytes)
        self.inbox = Inbox(self.settings, self.evidence, self.metrics)
        self.ingest = Ingest(self.settings, self.sessions, self.inbox, self.metrics)

    def fates(self) -> int:
        """Messages accounted for so far: stored lifts and photos, dead letters, duplicates."""
        with self.sessions() as session:
            rows = sum(session.scalar(select(func.count()).select_from(table)) or 0
                       for table in (Lift, Evidence, DeadLetter))
        return rows + int(self.metrics.value("trivue_ingest_lifts_duplicate_total"))

    def write(self, messages: list[tuple[str, bytes]], received_at: datetime | None = None) -> int:
        """Run one batch through the write path; returns how many messages it accounted for."""
        before = self.fates()
        at = received_at or utcnow()
        # Written as it is received: the raw lifts' retention is judged at write time too, and an
        # event of any date the parser accepts must be stored, not refused as expired.
        self.inbox.clock = lambda: at
        self.ingest._write([MqttMessage(topic, payload, at) for topic, payload in messages])
        return self.fates() - before

    def dead_letters(self) -> list[tuple[str, str]]:
        """(reason, topic) of every dead letter, oldest first."""
        with self.sessions() as session:
            return [tuple(row) for row in session.execute(
                select(DeadLetter.reason, DeadLetter.topic).order_by(DeadLetter.id)).all()]
