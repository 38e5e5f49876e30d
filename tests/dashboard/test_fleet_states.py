"""The fleet page tells a truck stopped cleanly from one offline and one never heard, believes a
heartbeat newer than the status message, and warns of two agents under one truck id.

Before: ``stopped`` read "Inconnu", a truck heard after its ``stopped`` still read stopped, a
stopped canary read "hors ligne", and two agents on one id went unnoticed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from server.fleet.registry import publish
from server.fleet.rollout import start
from server.ingest.models import Truck
from server.web.auth import create_token
from tests.dashboard.conftest import Browser
from tests.fleet.models import derived
from vision.schema import TruckStats


def test_fleet_page_shows_stopped_offline_unknown_and_two_agents(browser: Browser, tmp_path: Path) -> None:
    server = browser.server
    now = datetime.now(UTC)
    evening, later = now - timedelta(hours=3), now - timedelta(minutes=10)

    def heartbeat(truck: str, sent: datetime, uptime_s: float) -> str:
        return TruckStats(truck_id=truck, sent_at=sent, uptime_s=uptime_s, stream="recyclables").model_dump_json()

    with server.sessions() as session:
        for truck, status, status_at, seen in (
            ("benne-81", "stopped", evening, evening - timedelta(seconds=30)),  # end of the shift
            ("benne-82", "offline", evening, evening - timedelta(seconds=30)),  # connection lost
            ("benne-83", "unknown", None, None),  # in the registry, never heard
            ("benne-84", "stopped", later, now),  # heard since its "stopped": it runs
        ):
            stats = TruckStats(truck_id=truck, sent_at=seen, uptime_s=60).model_dump(mode="json") if seen else None
            session.merge(
                Truck(truck_id=truck, status=status, status_at=status_at, last_seen_at=seen, stats=stats, stats_at=seen)
            )
        session.commit()
    # Two agents under benne-85 over the real broker and ingest: started an hour and a minute ago.
    for sent, uptime in ((0, 3600), (1, 61), (2, 3602)):
        server.publish("benne-85/stats", heartbeat("benne-85", now + timedelta(seconds=sent), uptime))
    server.wait_for(
        lambda: any(t["truck_id"] == "benne-85" and t["duplicate_agents"] for t in server.api("/api/trucks")["trucks"]),
        "benne-85's two agents",
    )
    with server.sessions() as session:  # benne-81 was picked as canary before its shift ended
        sha = publish(session, server.settings.data_dir, derived(tmp_path, "2026.12.08-states"), "test").sha256
        rollout = start(session, server.settings, sha, 1, "user:admin", canary_lifts=20)
        everyone = [*rollout.canary, *rollout.rest]
        rollout.canary, rollout.rest = ["benne-81"], [t for t in everyone if t != "benne-81"]
        session.commit()

    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    page = browser.page

    def badge(truck: str) -> tuple[str, str]:
        found = page.locator(f"tr[data-truck={truck}] [data-state]")
        return found.inner_text(), found.get_attribute("title") or ""

    text, title = badge("benne-81")
    assert text == "Arrêté" and "arrêté proprement" in title
    assert "Silencieux" not in page.locator("tr[data-truck=benne-81]").inner_text()  # its silence is explained
    text, title = badge("benne-82")
    assert text == "Hors ligne" and "connexion perdue" in title.lower()
    assert "Silencieux" in page.locator("tr[data-truck=benne-82]").inner_text()
    text, title = badge("benne-83")
    assert text == "Inconnu" and "aucun" in title.lower()
    text, title = badge("benne-84")
    assert text == "En ligne" and "« Arrêté »" in title
    twins = page.locator("tr[data-truck=benne-85] [data-agents=duplicate]")
    assert twins.inner_text() == "⚠ Deux agents utilisent l'identifiant benne-85"
    assert "démarrés" in twins.get_attribute("title")
    assert page.locator("tr[data-truck=benne-84] [data-agents]").count() == 0
    assert page.locator("#rollout [data-canary=benne-81]").inner_text().endswith(" — arrêté")
    browser.shot("16-flotte-etats")
    page.get_by_role("link", name="English").click()
    page.wait_for_selector("body[data-ready=true]")
    assert badge("benne-81")[0] == "Stopped" and badge("benne-82")[0] == "Offline"
    assert twins.inner_text() == "⚠ Two agents use the id benne-85"
    assert page.locator("#rollout [data-canary=benne-81]").inner_text().endswith(" — stopped")
    page.get_by_role("link", name="Français").click()  # the language choice is remembered
    page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()


def said_online(now: datetime, truck_id: str, heard_minutes_ago: int) -> Truck:
    """A truck whose last status, an hour ago, was online, last heard from ``heard_minutes_ago``."""
    return Truck(truck_id=truck_id, status="online", status_at=now - timedelta(hours=1),
                 last_seen_at=now - timedelta(minutes=heard_minutes_ago))


def test_the_fleet_summary_is_what_the_metrics_count_whatever_the_readers_clock(browser: Browser) -> None:
    """« N en ligne sur T, S silencieux » and ``trivue_trucks{state="online"}``, ``trivue_trucks_silent``
    agree. Before, the page judged silence by the reader's clock: a PC 20 minutes fast flagged a truck
    heard 10 minutes ago, which no gauge counted, and the gauge counted trucks by their raw status."""
    server = browser.server
    now = datetime.now(UTC)
    with server.sessions() as session:
        session.merge(said_online(now, "benne-86", heard_minutes_ago=10))
        token = create_token(session, "viewer", "test-fleet-gauges")
        session.commit()
    browser.page.clock.set_fixed_time(now + timedelta(minutes=20))  # the reader's PC runs fast
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert "Silencieux" not in browser.page.locator("tr[data-truck=benne-86]").inner_text()
    summary = browser.page.locator("#fleet-summary").inner_text()
    online, total, silent = (
        int(n) for n in re.fullmatch(r"(\d+) en ligne sur (\d+), (\d+) silencieux", summary).groups()
    )
    body = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    gauges = dict(re.findall(r'^trivue_trucks\{state="(\w+)"\} (\S+)$', body, re.MULTILINE))
    assert float(gauges["online"]) == online and sum(float(n) for n in gauges.values()) == total
    assert re.search(rf"^trivue_trucks_silent {silent}(\.0)?$", body, re.MULTILINE), (summary, body)
    assert silent >= 1  # benne-09, silent for two hours, at least
    assert not browser.unexpected_errors()


def test_a_silent_canary_reads_as_its_row_does(browser: Browser, tmp_path: Path) -> None:
    """A canary « En ligne » by its state but not heard from for 15 minutes: its row says « En ligne »
    and « ⚠ Silencieux »; the rollout panel said "hors ligne" (the rollout's offline_canaries). It now
    says silent, as the row does; a canary never heard (« Inconnu ») reads "jamais vu"."""
    server = browser.server
    now = datetime.now(UTC)
    with server.sessions() as session:
        session.merge(said_online(now, "benne-87", heard_minutes_ago=20))
        session.merge(Truck(truck_id="benne-88", status="unknown"))
        sha = publish(session, server.settings.data_dir, derived(tmp_path, "2026.12.09-silent"), "test").sha256
        rollout = start(session, server.settings, sha, 1, "user:admin", canary_lifts=20)
        everyone = [*rollout.canary, *rollout.rest]
        rollout.canary = ["benne-87", "benne-88"]
        rollout.rest = [t for t in everyone if t not in rollout.canary]
        session.commit()
    assert {"benne-87", "benne-88"} <= set(server.api("/api/rollouts")["rollouts"][0]["offline_canaries"])

    browser.login(path="/flotte")
    page = browser.page
    page.wait_for_selector("body[data-ready=true]")
    row = page.locator("tr[data-truck=benne-87]")
    assert row.locator("[data-state]").inner_text() == "En ligne" and "Silencieux" in row.inner_text()
    canary = page.locator("#rollout [data-canary=benne-87]")
    assert canary.inner_text().endswith(" — ⚠ silencieux, dernier signe il y a 20 min"), canary.inner_text()
    assert canary.get_attribute("data-silent") == "true"
    never = page.locator("#rollout [data-canary=benne-88]")
    assert page.locator("tr[data-truck=benne-88] [data-state]").inner_text() == "Inconnu"
    assert never.inner_text().endswith(" — ⚠ jamais vu"), never.inner_text()
    page.get_by_role("link", name="English").click()
    page.wait_for_selector("body[data-ready=true]")
    assert canary.inner_text().endswith(" — ⚠ silent, last heard from 20 min ago"), canary.inner_text()
    assert never.inner_text().endswith(" — ⚠ never seen")
    page.get_by_role("link", name="Français").click()  # the language choice is remembered
    page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()


def test_ages_are_counted_on_the_servers_clock_not_the_readers(browser: Browser) -> None:
    """« il y a N min » on a PC 20 minutes fast: a truck heard 10 minutes ago read « il y a 30 min »
    (``fmt.ago`` subtracted from the browser's clock); the page now counts on the server's."""
    now = datetime.now(UTC)
    with browser.server.sessions() as session:
        session.merge(said_online(now, "benne-89", heard_minutes_ago=10))
        session.commit()
    browser.page.clock.set_fixed_time(now + timedelta(minutes=20))  # the reader's PC runs fast
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    row = browser.page.locator("tr[data-truck=benne-89]").inner_text()
    assert "il y a 10 min" in row, row
    assert not browser.unexpected_errors()
