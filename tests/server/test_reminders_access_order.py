"""The right of access lists the audit entries naming a household in one order on every run and
both databases: entries written in the same instant (an erasure's opt-out and its erasure, an import
and its reads) came in whatever order the scan gave them, ordered by their timestamp only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from server.audit import AuditEntry
from server.reminders.access import household_access
from tests.server.reminders_city import engine_for

KEY = "bin:BAC-ORDRE"
AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path,
             postgres_available: bool) -> Iterator[sessionmaker[Session]]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield sessionmaker(engine, expire_on_commit=False)


@pytest.mark.parametrize("reversed_scan", [False, True])
def test_entries_of_one_instant_come_in_the_order_they_were_written(sessions: sessionmaker[Session],
                                                                   reversed_scan: bool) -> None:
    with sessions() as session:
        # Written out of id order on disk (a scan in physical order is not id order), enough of them
        # for PostgreSQL's sort, not stable beyond a handful of rows, to mix the ties.
        ids = [n * 7 % 61 + 1 for n in range(60)]
        for n in ids:
            session.add(AuditEntry(id=n, at=AT, actor=f"agent {61 - n:02d}", action=f"reminders.step{n:02d}",
                                   target=KEY))
            session.flush()
        session.add(AuditEntry(id=99, at=AT.replace(minute=31), actor="agent", action="reminders.step99",
                               target=KEY))
        session.commit()
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text(f"PRAGMA reverse_unordered_selects = {int(reversed_scan)}"))
        elif reversed_scan:  # a scan in the table's physical order, as a larger table's plan may choose
            session.execute(text("SET LOCAL enable_indexscan = off"))
            session.execute(text("SET LOCAL enable_bitmapscan = off"))
        try:
            report = household_access(session, KEY, "dpo", ZoneInfo("Europe/Paris"))
        finally:
            if session.get_bind().dialect.name == "sqlite":
                session.execute(text("PRAGMA reverse_unordered_selects = 0"))
    actions = [e["action"] for e in report["journal_d_audit"]]
    assert actions == [f"reminders.step{n:02d}" for n in (*sorted(ids), 99)]
