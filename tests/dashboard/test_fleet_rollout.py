"""The fleet page shows each truck's model, a model change refused with its reason, and the rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy
from sqlalchemy.orm import Session

from server.fleet.models import Rollout, RolloutState
from server.fleet.registry import publish
from server.fleet.rollout import advance, confirm, start
from server.ingest.models import Truck
from tests.dashboard.conftest import Browser
from tests.fleet.models import SHIPPED, SHIPPED_VERSION, derived
from vision.schema import TruckStats


def test_fleet_page_shows_models_and_the_rollout(browser: Browser, tmp_path: Path) -> None:
    server = browser.server
    with server.sessions() as session:
        shipped = publish(session, server.settings.data_dir, SHIPPED, "test").sha256
        new = publish(session, server.settings.data_dir, derived(tmp_path, "2026.12.03-field"), "test").sha256
        sock = publish(session, server.settings.data_dir, derived(tmp_path, "2026.12.03-sock", rename={"bag": "sock"}),
                       "test").sha256
        session.commit()
    now = datetime.now(UTC)
    refusal = ("classes without rules: rules_fr.yaml: model class 'sock' has no rule for stream 'recyclables'")
    for truck, running, version, update in (
            ("benne-31", new, "2026.12.03-field", {"sha256": new, "state": "installed", "at": now}),
            ("benne-32", shipped, SHIPPED_VERSION, {"sha256": sock, "state": "refused", "reason": refusal,
                                                 "at": now})):
        stats = TruckStats(truck_id=truck, sent_at=now, uptime_s=60, model={"name": "trivue-waste", "version": version},
                           model_sha256=running, model_update=update, stream="recyclables")
        server.publish(f"{truck}/status", "online", retain=True)
        server.publish(f"{truck}/stats", stats.model_dump_json())
    server.wait_for(lambda: {"benne-31", "benne-32"} <= {t["truck_id"] for t in server.api("/api/trucks")["trucks"]
                                                         if t["stats"]}, "the two heartbeats")
    with server.sessions() as session:
        rollout = start(session, server.settings, new, 1, "user:admin", canary_lifts=20)
        canary, rest = rollout.canary, rollout.rest
        session.commit()

    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    section = browser.page.locator("#rollout")
    assert "Déploiement du modèle" in section.inner_text()
    assert "trivue-waste 2026.12.03-field" in section.inner_text()
    assert section.locator("[data-state=canary]").inner_text() == "camions pilotes d'abord"
    assert f"{canary[0]} (pilote) : 0 / 20 levées avec le modèle" in section.inner_text()
    assert rest and "Suivent ensuite" in section.inner_text()  # the fleet holds more trucks than the canary
    installed = browser.page.locator("tr[data-truck=benne-31]")
    assert "2026.12.03-field" in installed.inner_text() and installed.locator("[data-update]").count() == 0
    refused = browser.page.locator("tr[data-truck=benne-32] [data-update=refused]")
    assert refused.inner_text() == "⚠ 2026.12.03-sock refusé" and refused.get_attribute("title") == refusal
    # The truck's own refusal reads in French too: its kind, then the truck's words.
    rules_fr = "des classes du modèle n'ont pas de règle pour le flux du camion"
    own = browser.page.locator("tr[data-truck=benne-32] .update-reason")
    assert own.inner_text() == f"{rules_fr} ({refusal})" and own.get_attribute("data-refusal") == "rules"
    assert canary[0] != "benne-09"  # a silent truck is no canary
    assert SHIPPED_VERSION in browser.page.locator("tr[data-truck=benne-32]").inner_text()
    browser.shot("10-flotte-deploiement")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#rollout [data-state=canary]").inner_text() == "canary trucks first"
    assert "refused" in browser.page.locator("tr[data-truck=benne-32] [data-update=refused]").inner_text()
    assert own.inner_text() == f"classes of the model have no rule for the truck's stream ({refusal})"
    browser.shot("11-fleet-rollout-en")
    browser.page.get_by_role("link", name="Français").click()  # the language choice is remembered
    browser.page.wait_for_selector("body[data-ready=true]")

    # The canary refuses the model: the rollout halts, and its reason reads in French (the server
    # stores a code and its parameters; the truck's own words stay, named by their kind).
    with server.sessions() as session:
        truck = session.get(Truck, canary[0])
        # The canary may be a truck of another test on this server, heard from by its lifts alone (no
        # heartbeat yet): alive all the same (server.ingest.truck_state.state). It gets a heartbeat here.
        beat = truck.stats or TruckStats(truck_id=truck.truck_id, sent_at=datetime.now(UTC), uptime_s=60).model_dump(
            mode="json")
        truck.stats = {**beat, "model_update": {"sha256": new, "state": "refused", "reason": refusal,
                                                       "at": datetime.now(UTC).isoformat()}}
        advance(session, server.settings)
        session.commit()
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert section.locator("[data-state=halted]").inner_text() == "arrêté"
    reason = section.locator("[data-reason=canary_refused]")
    assert reason.inner_text() == (f"Motif : le camion pilote {canary[0]} a refusé le modèle : des classes du modèle "
                                   f"n'ont pas de règle pour le flux du camion ({refusal})")
    assert reason.get_attribute("title") == f"canary {canary[0]} refused the model: {refusal}"  # as the CLI says
    assert browser.page.locator(f"tr[data-truck={canary[0]}] .update-reason").inner_text() == f"{rules_fr} ({refusal})"
    browser.shot("12-flotte-refus")
    assert section.locator("[data-rest]").count() == 0  # a halted rollout never reaches the rest: no "then"

    # A truck that joins during the canary stage is one of the rest; once the rest followed, the page
    # says so (before: "Suivent ensuite" forever, and the newcomer was never listed nor given the model).
    with server.sessions() as session:
        start(session, server.settings, shipped, 1, "user:admin", canary_lifts=20)  # the canary refused new
        session.add(Truck(truck_id="benne-99", status="online"))
        session.flush()
        advance(session, server.settings)
        session.commit()
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert "benne-99" in section.locator("[data-rest=canary]").inner_text()
    with server.sessions() as session:
        confirm(session, server.settings, shipped, "user:admin")
        session.commit()
    browser.page.reload()
    browser.page.wait_for_selector("body[data-ready=true]")
    followed = section.locator("[data-rest=complete]").inner_text()
    assert followed.startswith("Ont suivi : ") and "benne-99" in followed
    assert not browser.unexpected_errors()


def test_fleet_page_flags_a_full_disk_and_the_photos_it_cost(browser: Browser) -> None:
    """Weeks without signal: the truck keeps every lift and drops its oldest photos; its heartbeat
    says so (wire 1.2), and the fleet page shows it where the manager looks, in both languages."""
    server = browser.server
    now = datetime.now(UTC)
    stats = TruckStats(truck_id="benne-41", sent_at=now, uptime_s=60, outbox_depth=5120, disk_short=True,
                       disk_free_mb=3.5, outbox_photos_dropped=212, outbox_photos_expired=40, stream="recyclables")
    healthy = TruckStats(truck_id="benne-42", sent_at=now, uptime_s=60, outbox_depth=0, disk_free_mb=900,
                         stream="recyclables")
    for truck, heartbeat in (("benne-41", stats), ("benne-42", healthy)):
        server.publish(f"{truck}/status", "online", retain=True)
        server.publish(f"{truck}/stats", heartbeat.model_dump_json())
    server.wait_for(lambda: {"benne-41", "benne-42"} <= {t["truck_id"] for t in server.api("/api/trucks")["trucks"]
                                                         if t["stats"]}, "the two heartbeats")
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    full = browser.page.locator("tr[data-truck=benne-41]")
    assert full.locator("[data-disk=short]").inner_text() == "⚠ disque plein"
    assert "(4 Mo libres)" in full.locator("[data-disk=short]").get_attribute("title")
    assert full.locator("[data-photos-lost=full]").inner_text() == "photos effacées (plein) : 212"
    assert full.locator("[data-photos-lost=expired]").inner_text() == "photos expirées : 40"
    fine = browser.page.locator("tr[data-truck=benne-42]")
    assert fine.locator("[data-disk]").count() == 0 and fine.locator("[data-photos-lost]").count() == 0
    browser.shot("13-flotte-disque-plein")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert full.locator("[data-disk=short]").inner_text() == "⚠ disk full"
    assert full.locator("[data-photos-lost=full]").inner_text() == "photos deleted (full): 212"
    browser.page.get_by_role("link", name="Français").click()  # the language choice is remembered
    browser.page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()


def test_fleet_page_flags_a_camera_clock_off(browser: Browser) -> None:
    """A camera box whose clock is off stamps its bursts with it: the agent corrects lift times and
    only logged it, on the truck. Its heartbeat says it (wire 1.3), and the fleet page shows it from
    30 s, behind or ahead, in both languages; a 1.2 truck's heartbeat (none said) shows nothing."""
    server = browser.server
    now = datetime.now(UTC)
    heartbeats = {"benne-61": 180.4, "benne-62": 1.7e9, "benne-63": -45.0, "benne-64": 12.5}
    for truck, offset in {**heartbeats, "benne-65": None}.items():
        stats = TruckStats(truck_id=truck, sent_at=now, uptime_s=60, outbox_depth=0, disk_free_mb=900,
                           stream="recyclables", camera_clock_offset_s=offset)
        server.publish(f"{truck}/status", "online", retain=True)
        server.publish(f"{truck}/stats", stats.model_dump_json(exclude_none=True))  # a 1.2 truck: no field
    names = {*heartbeats, "benne-65"}

    def heard() -> dict[str, dict] | None:
        found = {t["truck_id"]: t["stats"] for t in server.api("/api/trucks")["trucks"]
                 if t["stats"] and t["truck_id"] in names}
        return found if found.keys() == names else None

    trucks = server.wait_for(heard, "the five heartbeats")
    assert {truck: trucks[truck]["camera_clock_offset_s"] for truck in heartbeats} == heartbeats  # the API says it
    assert trucks["benne-65"]["camera_clock_offset_s"] is None
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    badge = {truck: browser.page.locator(f"tr[data-truck={truck}] [data-camera-clock]") for truck in trucks}
    assert badge["benne-61"].inner_text() == "⚠ horloge caméra décalée (3 min)"
    assert badge["benne-61"].get_attribute("data-camera-clock") == "behind"
    assert "a 3 min de retard sur celle du camion" in badge["benne-61"].get_attribute("title")
    assert badge["benne-62"].inner_text() == "⚠ horloge caméra décalée (54 ans)"  # a box booted in 1970
    assert badge["benne-63"].inner_text() == "⚠ horloge caméra décalée (45 s)"
    assert "a 45 s d'avance" in badge["benne-63"].get_attribute("title")
    assert badge["benne-64"].count() == 0 and badge["benne-65"].count() == 0  # within the poll; a 1.2 truck
    browser.shot("14-flotte-horloge-camera")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert badge["benne-61"].inner_text() == "⚠ camera clock off (3 min)"
    assert "is 45 s ahead of the truck's" in badge["benne-63"].get_attribute("title")
    assert badge["benne-62"].inner_text() == "⚠ camera clock off (54 years)"
    browser.shot("14-fleet-camera-clock-en")
    browser.page.get_by_role("link", name="Français").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()


def test_fleet_page_shows_a_stalled_rollout_and_configs_not_applied(browser: Browser, tmp_path: Path) -> None:
    """Before, a rollout whose canary never reported read as any rollout waiting for lifts; a truck
    offline when its config changed showed its old stream with no sign a newer config waited for it;
    and nothing said that the stored config was the one the truck refused (every change resent it)."""
    server = browser.server
    now, long_ago = datetime.now(UTC), datetime.now(UTC) - timedelta(hours=40)
    refused = "20261205T090000.000000Z"
    heard = {  # truck -> (last seen, its heartbeat's config words, the server's stored config)
        "benne-71": (long_ago, {}, None),
        "benne-72": (now, {"config_version": "20261201T080000.000000Z"},
                     {"config_version": "20261205T080000.000000Z", "stream": "glass"}),
        "benne-73": (now, {"config_version": "20261201T080000.000000Z",
                           "config_refused": f"{refused}: rules.yaml: no rules for stream 'glass'"},
                     {"config_version": refused, "stream": "glass"}),
    }

    def hear(session: Session, alive: bool) -> None:
        for truck_id, (seen, words, config) in heard.items():
            seen = now if alive else seen
            stats = TruckStats(truck_id=truck_id, sent_at=seen, uptime_s=60, stream="recyclables", **words)
            session.merge(Truck(truck_id=truck_id, status="online", status_at=seen, last_seen_at=seen,
                                stats_at=seen, stats=stats.model_dump(mode="json"), config=config))

    with server.sessions() as session:
        # The premise: no model has reached the whole fleet yet. The server is shared with the other
        # dashboard tests, and a complete rollout of theirs (run before this one in a random order)
        # made enrol() give its model to benne-72, a truck never asked, replacing the config this
        # test checks before the page loaded.
        session.execute(sqlalchemy.update(Rollout).where(Rollout.state == RolloutState.complete.value)
                        .values(state=RolloutState.superseded.value))
        new = publish(session, server.settings.data_dir, derived(tmp_path, "2026.12.07-stall"), "test").sha256
        # All alive when the rollout starts, so that its canary (alive first, then by id) is benne-71 or
        # another test's truck, never benne-72: a canary's config is replaced by one with the model.
        hear(session, alive=True)
        rollout = start(session, server.settings, new, 1, "user:admin", canary_lifts=20)
        hear(session, alive=False)
        # benne-71 was the canary, and has said nothing since the rollout began, 40 h ago.
        everyone = [*rollout.canary, *rollout.rest]
        rollout.canary, rollout.rest = ["benne-71"], [t for t in everyone if t != "benne-71"]
        rollout.created_at = long_ago
        session.commit()

    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    section = browser.page.locator("#rollout")
    stalled = section.locator("[data-stalled]")
    assert stalled.inner_text() == "⚠ bloqué" and "depuis plus de 24 h" in stalled.get_attribute("title")
    assert "benne-71" not in section.locator("[data-rest]").inner_text()
    assert section.locator("[data-silent=true]").inner_text() == (
        "benne-71 (pilote) : 0 / 20 levées avec le modèle — ⚠ silencieux, dernier signe il y a 2 j")
    pending = browser.page.locator("tr[data-truck=benne-72] [data-config=pending]")
    assert pending.inner_text() == "↻ configuration en attente"
    assert "20261205T080000.000000Z, flux Verre" in pending.get_attribute("title")
    assert browser.page.locator("tr[data-truck=benne-72]").locator("[data-config=refused]").count() == 0
    kept = browser.page.locator("tr[data-truck=benne-73]")
    assert kept.locator("[data-config=refused]").count() == 1 and kept.locator("[data-config=pending]").count() == 0
    assert "chaque modification la lui renvoie" in kept.locator("[data-config=stored-refused]").inner_text()
    browser.shot("15-flotte-deploiement-bloque")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert stalled.inner_text() == "⚠ stalled"
    assert pending.inner_text() == "↻ configuration pending"
    browser.page.get_by_role("link", name="Français").click()  # the language choice is remembered
    browser.page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()
