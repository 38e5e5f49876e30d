"""A truck whose camera saw nothing usable (wire 1.4): its lifts, sent over MQTT, are stored and
counted on the data-quality page, never as clean lifts of their street; the fleet page flags the truck
from its heartbeat, in French and English. Before, such lifts were counted clean for weeks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from server.ingest.aggregates import rebuild_aggregates
from server.ingest.models import Lift, MatchQualityDay, StreetDay
from tests.dashboard.conftest import Browser
from tests.dashboard.seed import make_event
from tests.dashboard.test_rgaa import english
from vision.rules import SortingRules
from vision.schema import Evidence, EvidenceReason, TruckStats, ViewProblem


def test_lifts_with_an_unusable_view_are_not_counted_clean(browser: Browser) -> None:
    server = browser.server
    street = server.city.streets["clean"][0]
    point = server.city.point_of[street]
    rules = SortingRules.load()
    when = datetime(2026, 10, 14, 7, 30, tzinfo=UTC)  # a day no other test writes
    before = server.api("/api/data-quality")["view_unusable"]
    day = when.astimezone(server.settings.zone).date()

    def figures() -> tuple[int, int, int]:
        """The street's lifts and contaminated lifts that day, and the day's lifts not judged."""
        with server.sessions() as session:
            row = session.scalars(select(StreetDay).where(StreetDay.day == day, StreetDay.street_id == street,
                                                          StreetDay.stream == "recyclables")).one_or_none()
            quality = session.scalars(select(MatchQualityDay).where(MatchQualityDay.day == day,
                                                                    MatchQualityDay.stream == "recyclables")).first()
            return (row.lifts if row else 0, row.contaminated if row else 0, quality.view_unusable if quality else 0)

    start = figures()
    seen = [make_event("benne-81", 81_001, when, point, {"bottle": 2}, rules),
            make_event("benne-81", 81_002, when + timedelta(minutes=1), point, {"glass": 1}, rules)]
    # lights out: the detector saw nothing (clean) or a shadow (an item), none of it judged
    dark = [make_event("benne-81", 81_003 + i, when + timedelta(minutes=2 + i), point, items, rules)
            .model_copy(update={"view_unusable": ViewProblem.dark}) for i, items in enumerate([{}, {}, {"glass": 1}])]
    for event in [*seen, *dark]:
        server.publish("benne-81/lift", event.to_json())
    ids = {str(e.event_id) for e in [*seen, *dark]}

    def stored() -> bool:
        with server.sessions() as session:
            return len(session.scalars(select(Lift.event_id).where(Lift.event_id.in_(ids))).all()) == 5

    server.wait_for(stored, "the five lifts")
    grown = tuple(b - a for a, b in zip(start, figures(), strict=True))
    assert grown == (2, 1, 3)  # the street judged on two lifts; three stored, not judged
    with server.sessions() as session:
        assert {v for (v,) in session.execute(select(Lift.view_unusable).where(Lift.event_id.in_(ids)))} == {
            None, "dark"}
    with server.sessions() as session, session.begin():
        rebuild_aggregates(session, since=day)  # ``trivue aggregates`` agrees with ingest
    assert tuple(b - a for a, b in zip(start, figures(), strict=True)) == (2, 1, 3)
    assert server.api("/api/data-quality")["view_unusable"] == before + 3

    browser.login(path="/qualite")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("#kpi-view-unusable").inner_text() == str(before + 3)
    assert "Levées non jugées (vue de caméra inutilisable)" in browser.page.locator("main").inner_text()
    browser.shot("15b-qualite-vue-camera")
    assert not browser.unexpected_errors()


def test_fleet_page_flags_a_truck_whose_camera_view_is_unusable(browser: Browser) -> None:
    server = browser.server
    now = datetime.now(UTC)
    views = {"benne-82": {"problem": "dark", "lifts": 3, "since": now - timedelta(minutes=20)},
             "benne-83": {"problem": "flat", "lifts": 1, "since": now},
             "benne-84": {"problem": None, "lifts": 0}, "benne-85": None}  # usable; a 1.3 truck
    for truck, view in views.items():
        stats = TruckStats(truck_id=truck, sent_at=now, uptime_s=60, stream="recyclables", camera_view=view)
        server.publish(f"{truck}/status", "online", retain=True)
        server.publish(f"{truck}/stats", stats.model_dump_json(exclude_none=True))
    server.wait_for(lambda: set(views) <= {t["truck_id"] for t in server.api("/api/trucks")["trucks"] if t["stats"]},
                    "the four heartbeats")
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    badge = {truck: browser.page.locator(f"tr[data-truck={truck}] [data-camera-view]") for truck in views}
    assert badge["benne-82"].inner_text() == "⚠ Vue de caméra inutilisable : image sombre depuis 3 levées"
    assert "vérifiez l'éclairage de la trémie" in badge["benne-82"].get_attribute("title")
    assert badge["benne-83"].inner_text() == "⚠ Vue de caméra inutilisable : image sans contraste depuis 1 levée"
    assert badge["benne-84"].count() == 0 and badge["benne-85"].count() == 0
    # The flag is the longest text of the table: on one line (466 px) it pushed the stream and the
    # week's lifts off a 1280 px screen (trivue demo's dark-camera truck, three trucks). It wraps.
    box = badge["benne-82"].bounding_box()
    assert box is not None and box["width"] <= 16 * 16 + 1 and box["height"] > 30, box
    browser.shot("14c-flotte-vue-camera")
    browser.page.get_by_role("link", name="English").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert badge["benne-82"].inner_text() == "⚠ Camera view unusable: dark picture for 3 lifts"
    browser.page.get_by_role("link", name="Français").click()
    browser.page.wait_for_selector("body[data-ready=true]")
    assert not browser.unexpected_errors()


def test_the_fleet_flag_opens_the_photo_of_the_unusable_view(browser: Browser, shared_dir: Path) -> None:
    """The truck keeps one photo of the lift that turned its view unusable (evidence reason ``view``):
    from the flag, a manager sees what the camera saw (a bag on the lens) before sending a technician."""
    server = browser.server
    truck, now = "benne-87", datetime.now(UTC).replace(microsecond=0)
    photo = sorted((shared_dir / "datasets" / "hopper-bags" / "images" / "val").glob("*.jpg"))[0].read_bytes()
    height, width = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_GRAYSCALE).shape
    point = server.city.point_of[server.city.streets["clean"][0]]
    event = make_event(truck, 87_001, now - timedelta(minutes=30), point, {}, SortingRules.load()).model_copy(
        update={"view_unusable": ViewProblem.flat, "evidence": Evidence(
            sha256=hashlib.sha256(photo).hexdigest(), width=width, height=height, reason=EvidenceReason.view,
            detections=[])})
    server.publish(f"{truck}/lift", event.to_json())
    server.publish(f"{truck}/evidence/{event.event_id}", photo)
    view = {"problem": "flat", "lifts": 2, "since": event.started_at}
    server.publish(f"{truck}/status", "online", retain=True)
    server.publish(f"{truck}/stats", TruckStats(truck_id=truck, sent_at=now, uptime_s=60, stream="recyclables",
                                                 camera_view=view).model_dump_json(exclude_none=True))
    server.wait_for(lambda: next((t["view_photo"] for t in server.api("/api/trucks")["trucks"]
                                  if t["truck_id"] == truck), None), "the view's photo")
    browser.login(path="/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    link = browser.page.locator(f"tr[data-truck={truck}] [data-view-photo]")
    assert link.inner_text() == "voir la photo"
    assert link.get_attribute("href") == f"/api/lifts/{event.event_id}/evidence.jpg"
    assert browser.page.request.get(server.url + link.get_attribute("href")).body() == photo
    assert server.api(f"/api/lifts/{event.event_id}")["evidence"]["reason"] == "view"
    # Every flagged truck has its « voir la photo »: each link's name says whose lift and when (RGAA 6.1),
    # beginning with the words shown (WCAG 2.5.3).
    local = event.started_at.astimezone(server.settings.zone)
    assert link.get_attribute("aria-label") == (
        f"voir la photo de la vue de caméra, camion {truck}, levée du {local:%d/%m/%Y %H:%M}")
    assert browser.page.get_by_role("link", name=f"camion {truck}, levée du").count() == 1
    browser.shot("14d-flotte-photo-vue-camera")
    english(browser)
    browser.goto("/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert link.inner_text() == "see the photo"
    assert link.get_attribute("aria-label") == (
        f"see the photo of the camera view, truck {truck}, lift of {local:%d/%m/%Y, %H:%M}")
    browser.shot("14d-fleet-view-photo-en")
    assert not browser.unexpected_errors()
