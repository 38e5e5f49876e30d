"""docs/privacy.md §1 ter: every read of household-level data is in the audit log.

A sent campaign's effect report names each targeted household by its key (``address:<BAN id>`` or
``bin:<tag>``) with its own before/after contamination. Its CSV was audited
(``reminders.effect.export``), the same rows as JSON (what the reminders page reads) were not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.reminders_city import engine_for, seed_city
from tests.server.test_household_level import CONTACTS, ORIGIN, TODAY, Served


@pytest.fixture
def served(tmp_path: Path, postgres_available: bool) -> Iterator[Served]:
    with engine_for("sqlite", tmp_path, postgres_available) as engine:
        yield Served(seed_city(engine, tmp_path, TODAY), engine)


def test_the_effect_reports_household_rows_are_an_audited_read(served: Served) -> None:
    on, manager = served.on, served.headers()
    imported = on.post("/api/reminders/households/import", content=CONTACTS.encode(),
                       headers={**manager, **ORIGIN, "Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.text
    created = on.post("/api/reminders/campaigns", json={"name": "Foyers", "until": TODAY.isoformat()},
                      headers=manager).json()
    items = served.get(on, f"/api/reminders/campaigns/{created['id']}").json()["items"]
    for item in items:
        on.post(f"/api/reminders/items/{item['id']}/review", json={"decision": "approve"}, headers=manager)
    assert on.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager).status_code == 200
    before = len(served.audit("reminders.effect.read"))

    report = served.get(on, f"/api/reminders/campaigns/{created['id']}/effect").json()
    households = [u["unit"] for u in report["units"] if u["group"] == "household"]
    assert households and all(k.startswith(("address:", "bin:")) for k in households)  # household data indeed
    entries = served.audit("reminders.effect.read")
    assert len(entries) == before + 1
    assert entries[-1].actor == "token:test-manager" and entries[-1].target == f"campaign:{created['id']}"
    assert f"{len(households)} household" in (entries[-1].detail or "")
