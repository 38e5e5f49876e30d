"""The collectivité's local time everywhere, across the October and March clock changes.

Lifts a few minutes either side of midnight and inside the repeated hour of 25 October 2026 and
around the skipped hour of 28 March 2027 (Europe/Paris) go through the ingest's own functions:
their collection days must be Paris days, and the pages must show Paris times even in a browser
whose own zone is New York, Kiritimati (UTC+14) or Pago Pago (UTC-11).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.config import load_settings
from server.db import make_engine
from server.ingest.aggregates import insert_lifts, lift_row
from server.localtime import local_day, local_today
from server.migrate import upgrade_database
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.web.auth import add_user
from tests.conftest import free_port
from tests.dashboard.seed import PASSWORD, make_event
from tests.server.streets_fixture import RENNES_CENTRE, points_on_streets
from vision.rules import SortingRules

PARIS = ZoneInfo("Europe/Paris")
# (UTC moment, Paris day, Paris clock as the French dashboard writes it)
MOMENTS = [
    (datetime(2026, 10, 24, 21, 30, tzinfo=UTC), date(2026, 10, 24), "24/10/2026 23:30"),  # CEST, UTC+2
    (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25), "25/10/2026 00:30"),  # UTC day is the 24th
    (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), date(2026, 10, 25), "25/10/2026 02:30"),  # 02:30 CEST...
    (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), date(2026, 10, 25), "25/10/2026 02:30"),  # ...and 02:30 CET again
    (datetime(2026, 10, 25, 22, 30, tzinfo=UTC), date(2026, 10, 25), "25/10/2026 23:30"),  # CET, UTC+1
    (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), date(2026, 10, 26), "26/10/2026 00:30"),
    (datetime(2027, 3, 27, 22, 30, tzinfo=UTC), date(2027, 3, 27), "27/03/2027 23:30"),  # CET
    (datetime(2027, 3, 27, 23, 30, tzinfo=UTC), date(2027, 3, 28), "28/03/2027 00:30"),
    (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), date(2027, 3, 28), "28/03/2027 03:30"),  # 02:30 never happens
    (datetime(2027, 3, 28, 21, 30, tzinfo=UTC), date(2027, 3, 28), "28/03/2027 23:30"),  # CEST, UTC+2
    (datetime(2027, 3, 28, 22, 30, tzinfo=UTC), date(2027, 3, 29), "29/03/2027 00:30"),
]
BROWSER_ZONES = ("America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago")


@dataclass
class Served:
    url: str
    street_id: int


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server (no MQTT) over one Rennes street whose lifts are all alerts (a battery) at ``MOMENTS``."""
    data_dir = tmp_path_factory.mktemp("localtime")
    port = free_port()
    settings = load_settings(env={}, data_dir=data_dir, port=port, cookie_secure=False, ingest_enabled=False,
                             timezone="Europe/Paris")
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        import_street_file(db, RENNES_CENTRE, commune="Rennes")
        add_user(db, "gestionnaire", PASSWORD, "manager")
        db.commit()
    on = points_on_streets(sessions, 1)[0]
    rules = SortingRules.load()
    with sessions() as db:
        locator = Locator.from_session(db)
        rows = [lift_row(make_event("benne-01", i, moment, (on.lat, on.lon), {"battery": 1}, rules),
                         moment, settings.zone, locator) for i, (moment, _, _) in enumerate(MOMENTS)]
        insert_lifts(db, rows)
        db.commit()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.1)
        assert thread.is_alive(), "the server did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", on.street_id)
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


def test_collection_days_are_paris_days_across_both_clock_changes(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        client.post("/api/login", json={"name": "gestionnaire", "password": PASSWORD}).raise_for_status()
        detail = client.get(f"/api/streets/{served.street_id}",
                            params={"since": "2026-10-01", "until": "2027-04-30"}).json()
    daily = {d["day"]: d["lifts"] for d in detail["daily"]}
    assert daily == {"2026-10-24": 1, "2026-10-25": 4, "2026-10-26": 1,
                     "2027-03-27": 1, "2027-03-28": 3, "2027-03-29": 1}
    assert all(local_day(moment, PARIS) == day for moment, day, _ in MOMENTS)


def test_local_today_is_the_zones_day_not_the_machines() -> None:
    late = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # the 24th in UTC, already the 25th in Paris
    assert local_today(PARIS, late) == date(2026, 10, 25)
    assert local_today(ZoneInfo("America/New_York"), late) == date(2026, 10, 24)
    with pytest.raises(ValueError, match="naive datetime"):
        local_day(datetime(2026, 10, 25, 2, 30), PARIS)


@pytest.mark.parametrize("browser_zone", BROWSER_ZONES)
def test_pages_show_paris_times_in_a_browser_set_to_another_zone(chromium: Any, served: Served,
                                                                 browser_zone: str, screenshot_dir: Path) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR", timezone_id=browser_zone)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(served.url + "/login?next=/alertes")
        page.get_by_label("Identifiant").fill("gestionnaire")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/alertes")
        times = page.locator("#alerts time")
        times.nth(len(MOMENTS) - 1).wait_for()
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == browser_zone
        shown = sorted(times.all_inner_texts())
        assert shown == sorted(text for _, _, text in MOMENTS)
        if browser_zone == BROWSER_ZONES[0]:
            page.screenshot(path=str(screenshot_dir / "localtime-alertes-new-york.png"), full_page=True)
        # The period filters count days of the collectivité: "today" is Paris' today.
        page.goto(served.url + "/carte?period=30")
        assert page.locator("#f-until").input_value() == local_today(PARIS).isoformat()
    finally:
        context.close()
    assert errors == []
