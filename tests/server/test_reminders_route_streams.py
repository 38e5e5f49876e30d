"""The route sheet says which stream each visit and each street notice is about (« Emballages (bac
jaune) », « Verre »...), in the dashboard's words: an ambassadeur at the door did not know which bin
to talk about."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select

from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.letters import route_sheet_pdf
from server.reminders.models import HOUSEHOLD, STREET, Item
from server.reminders.plan import make_plan
from server.reminders.walking_route import route_streets
from tests.server.reminders_city import engine_for, seed_city, sure_addresses
from tests.server.test_reminders_route_sheets import sheet_text
from vision.schema import Stream

TODAY = date(2026, 11, 20)


def test_each_line_of_the_route_sheet_names_its_stream(tmp_path: Path) -> None:
    rules = RemindersConfig()
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            (hoche,) = [a for a in sure_addresses(session) if a.label.startswith("3 Rue Hoche")]
            for days in (1, 3, 4, 5):  # a plastic bottle in the glass bank, four times: more than the bac jaune
                city.lift(session, "glass", (hoche.lat, hoche.lon), days, {"bottle": 1}, stream=Stream.glass)
            session.commit()
            campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
            session.flush()
            items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
            for item in items:
                if item.kind in (HOUSEHOLD, STREET):
                    item.level = 3 if item.kind == HOUSEHOLD else item.level
                    review(session, item.id, Decision(True), "test")
            (visit,) = [i for i in items if i.kind == HOUSEHOLD and i.address_id == hoche.id]
            assert visit.streams == {"glass": 4, "recyclables": 3}
            blocks = route_streets(session, items)
            stops = {s.place.split(" 35000")[0]: s for b in blocks for s in b.stops}
            assert stops["3 Rue Hoche"].stream == "Verre, Emballages (bac jaune)", "most lifts first"
            assert stops["5 Rue Hoche"].stream == "Emballages (bac jaune)"
            whole = [s for b in blocks for s in b.stops if s.place.startswith("Toute la rue")]
            assert whole and all(s.stream == "Emballages (bac jaune)" for s in whole), whole
            # An item planned before the streams were kept says those of its photos' lifts.
            visit.streams = None
            session.flush()
            stops = {s.place.split(" 35000")[0]: s for b in route_streets(session, items) for s in b.stops}
            assert stops["3 Rue Hoche"].stream.startswith("Verre"), stops["3 Rue Hoche"]
    text = sheet_text(route_sheet_pdf("Novembre", "22 octobre 2026 au 20 novembre 2026", blocks))
    assert "Flux" in text and "Verre, Emballages (bac jaune)" in text, text
