"""The route sheet's « Toute la rue (bacs sans adresse sûre) » line counts the lifts without a sure
household, as its label says, not every contaminated lift of the street (161 for 84 in the demo)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy import select

from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.letters import route_sheet_pdf
from server.reminders.models import Item
from server.reminders.plan import make_plan
from server.reminders.walking_route import route_streets
from tests.server.reminders_city import engine_for, seed_city

TODAY = date(2026, 11, 20)


def test_the_whole_street_line_counts_lifts_without_a_sure_household(tmp_path: Path) -> None:
    rules = RemindersConfig()
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            plan = make_plan(session, rules, TODAY)
            campaign = create_campaign(session, plan, "Visites", "test", rules)
            session.flush()
            items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
            (street,) = [i for i in items if i.kind == "street" and i.street_id == city.streets["dirty"]]
            review(session, street.id, Decision(True), "test")
            blocks = route_streets(session, items)
    unsure = plan.street_only_by_street[city.streets["dirty"]]
    assert unsure == 6 < street.contaminated == 12  # the six blurred fixes; was 12 (every contaminated lift)
    assert street.unattributed == unsure
    (stop,) = [s for b in blocks for s in b.stops if s.place.startswith("Toute la rue")]
    assert stop.lifts == f"{unsure} sur {street.contaminated} contaminées"
    pdf = route_sheet_pdf("Visites", "période", blocks)
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert f"{unsure} sur {street.contaminated} contaminées" in text


def test_the_whole_street_line_lists_the_errors_of_the_lifts_it_counts(tmp_path: Path) -> None:
    """Its errors column described the street's every contaminated lift (households' included),
    next to a figure counting only the lifts without a sure household."""
    from server.ingest.models import Lift
    from server.reminders.targets import count_categories
    from server.reminders.walking_route import errors_text

    rules = RemindersConfig()
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            plan = make_plan(session, rules, TODAY)
            campaign = create_campaign(session, plan, "Visites", "test", rules)
            session.flush()
            items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
            (street,) = [i for i in items if i.kind == "street" and i.street_id == city.streets["dirty"]]
            review(session, street.id, Decision(True), "test")
            blocks = route_streets(session, items)
            blurred = list(session.execute(select(Lift.errors).where(Lift.event_id.in_(city.events["blurred"]))))
    unsure = dict(count_categories(blurred))
    assert street.unattributed_categories == unsure
    assert unsure != street.categories  # the street's errors count the sure households' lifts too
    (stop,) = [s for b in blocks for s in b.stops if s.place.startswith("Toute la rue")]
    assert stop.errors == errors_text(unsure)


def test_a_campaign_made_before_r0006_says_its_errors_are_the_streets(tmp_path: Path) -> None:
    """An item stored with the count (r0005) but not its errors says whose errors it lists."""
    rules = RemindersConfig()
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            campaign = create_campaign(session, make_plan(session, rules, TODAY), "Visites", "test", rules)
            session.flush()
            items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
            (street,) = [i for i in items if i.kind == "street" and i.street_id == city.streets["dirty"]]
            street.unattributed_categories = None
            review(session, street.id, Decision(True), "test")
            (stop,) = [s for b in route_streets(session, items) for s in b.stops if s.place.startswith("Toute")]
    assert stop.errors.startswith("toute la rue : ")
