"""A household's rights as the DPO honours them: access (art. 15) gives everything held about one
key, in French, audited without copying the data into the trail; erasure (art. 17) forgets at least
what the retention's expiry forgets (letter PDF, delivery detail, Message-ID, reviewer's note, the
campaigns' recorded exclusions). SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.app import create_app
from server.audit import AuditEntry
from server.db import utcnow
from server.ingest.models import DeadLetter, Lift
from server.ingest.overrule import overrule
from server.reminders.access import access_text, household_access
from server.reminders.households import erase_household
from server.reminders.models import Campaign, Contact, Item, OptOut
from server.streets.models import Bin
from server.web.auth import create_token
from tests.server.reminders_city import DIRTY, City, engine_for, seed_city
from trivue.cli import main

TODAY = date(2026, 11, 20)
NAME, EMAIL = "Mme Odile Martin", "odile.martin@example.fr"


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[City]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def sent_letter(session: Session, city: City, key: str, exclude: dict[str, Any]) -> tuple[Item, Path]:
    """A campaign whose letter to ``key`` went out: its PDF in the server's reminders folder."""
    campaign = Campaign(name="Octobre", created_by="test", since=date(2026, 10, 1), until=date(2026, 10, 31),
                        rules={"exclude": exclude})
    session.add(campaign)
    session.flush()
    letter = city.settings.data_dir / "reminders" / f"campagne-{campaign.id}" / "courrier-1.pdf"
    letter.parent.mkdir(parents=True, exist_ok=True)
    letter.write_bytes(b"%PDF " + NAME.encode())
    item = Item(campaign_id=campaign.id, kind="household", level=1, target_key=key, street_id=1,
                address_id=int(key.split(":")[1]) if key.startswith("address:") else None,
                bin_id=key.split(":")[1] if key.startswith("bin:") else None, lifts=5, contaminated=3,
                categories={"verre": 3}, event_ids=["e1"], reason="3 levées contaminées", status="sent",
                channel="letter", send_detail=str(letter), message_id="<1@metropole.fr>",
                review_note=f"{NAME} a appelé", reviewed_by="agent")
    session.add(item)
    session.add(Contact(key=key, name=NAME, email=EMAIL))
    session.flush()
    return item, letter


def test_erasure_forgets_what_the_expiry_would(city: City) -> None:
    """The erasure kept the letter's PDF on disk (name and address printed on it), its path, the
    Message-ID and the reviewer's note, and left the household in the campaign's recorded
    exclusions, though the 365-day expiry removes all of these."""
    target = city.addresses["target"].id
    key = f"address:{target}"
    with city.sessions() as session:
        item, letter = sent_letter(session, city, key, {"addresses": [target, 99], "bins": ["BAC-9"]})
        done = erase_household(session, key, "test", note="demande 12",
                               letters_root=city.settings.data_dir / "reminders")
        session.commit()
        item_id = item.id
    assert done["letters"] == 1 and not letter.exists()
    with city.sessions() as session:
        kept = session.get(Item, item_id)
        assert kept is not None and kept.target_key == f"erased:{item_id}"
        assert (kept.send_detail, kept.message_id, kept.review_note) == (None, None, None)
        assert kept.status == "sent" and kept.contaminated == 3  # the campaign's figures stay
        rules = session.scalars(select(Campaign)).one().rules
        assert rules["exclude"] == {"addresses": [99], "bins": ["BAC-9"]}
        trail = " ".join(f"{e.target} {e.detail}" for e in session.scalars(select(AuditEntry)))
        assert NAME not in trail and EMAIL not in trail


def test_right_of_access_on_the_command_line(city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``trivue reminders access KEY --out FILE``: address, contact, lifts with their photos, the
    reminders and the audit entries naming the key, in French; the export is audited by counts only.
    Then ``trivue reminders erase`` deletes the letter the server wrote."""
    target = city.addresses["target"]
    key = f"address:{target.id}"
    with city.sessions() as session:
        _item, letter = sent_letter(session, city, key, {})
        # A lift at the address with no confidence at all (neither sure nor vague to SQL's NULL) was in
        # neither group of the access file.
        unsure = session.scalars(select(Lift).where(Lift.address_id == target.id,
                                                    Lift.event_id.in_(city.events["blurred"]))).first()
        unsure.match_confidence = None
        overrule(session, city.events["target"][0], "user:gestion", "Photo du foyer : compost", utcnow())
        session.commit()
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "false")  # a person's right: whatever the switch says
    assert main(["reminders", "opt-out", key, "--by", "dpo"]) == 0
    out = tmp_path / "acces.json"
    assert main(["reminders", "access", key, "--out", str(out), "--json", "--by", "dpo"]) == 0
    assert "levée" in capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["adresse"]["libellé"] == target.label
    assert report["contact"]["nom"] == NAME and report["opposition"] is not None
    lifts = {lift["identifiant"]: lift for lift in report["levées"]}
    assert set(city.events["target"]) <= set(lifts)
    assert sum(lifts[e]["photo_conservée"] for e in city.events["target"]) == 3  # the contaminated ones
    # Lifts placed at the address by a fix 60 m off (confidence under the reminders' threshold) may be a
    # neighbour's: the file listed them, times, errors and GPS (art. 15-4); it now counts them only.
    with city.sessions() as session:
        vague = set(session.scalars(select(Lift.event_id).where(
            Lift.address_id == target.id, Lift.event_id.in_(city.events["blurred"]))))
    assert vague and not vague & set(lifts), vague & set(lifts)
    assert report["levées_non_attribuées"] == len(vague)
    disputed = lifts[city.events["target"][0]]  # overruled before the export: the household reads it
    assert disputed["jugement_contesté"]["motif"] == "Photo du foyer : compost" and disputed["modèle"]["version"]
    assert all(lifts[e]["jugement_contesté"] is None for e in city.events["target"][1:])
    assert [r["statut"] for r in report["rappels"]] == ["envoyé"]
    assert "reminders.household.opt_out" in {e["action"] for e in report["journal_d_audit"]}
    text = tmp_path / "acces.txt"
    assert main(["reminders", "access", key, "--out", str(text)]) == 0
    written = text.read_text(encoding="utf-8")
    assert target.label in written and "Levées de bac attribuées au foyer : " in written and "Octobre" in written
    assert f"{len(vague)} autres levées ont été placées à cette adresse" in written
    assert "jugement contesté le " in written and "(Photo du foyer : compost) : compté conforme" in written
    bin_report = tmp_path / "bac.json"
    assert main(["reminders", "access", "bin:BAC-0042", "--out", str(bin_report), "--json"]) == 0
    assert {x["identifiant"] for x in json.loads(bin_report.read_text())["levées"]} == set(city.events["bin"])
    assert main(["reminders", "access", "maison-12", "--out", str(text)]) == 2
    with city.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "reminders.household.access")))
    assert [e.target for e in entries] == [key, key, "bin:BAC-0042"] and entries[0].actor == "cli:dpo"
    assert all(NAME not in (e.detail or "") and target.label not in (e.detail or "") for e in entries)
    assert main(["reminders", "erase", key]) == 0
    assert not letter.exists() and "0 message refusé vidé" in capsys.readouterr().out


def test_right_of_access_on_the_api_is_for_admins(city: City) -> None:
    engine = city.sessions.kw["bind"]
    app = create_app(city.settings, engine, start_ingest=False)
    with city.sessions() as session:
        tokens = {role: create_token(session, role, f"test-{role}") for role in ("manager", "admin")}
        refused = refused_lift(city, session, "BAC-0042")
        session.commit()
    client = TestClient(app)
    path = "/api/reminders/households/bin:BAC-0042/access"
    # A manager reading an address's lifts this way would walk round the household-level switch.
    assert client.get(path, headers={"Authorization": f"Bearer {tokens['manager']}"}).status_code == 403
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    report = client.get(path, headers=admin).json()
    assert {x["identifiant"] for x in report["levées"]} == set(city.events["bin"])
    assert [x["levée"] for x in report["messages_refusés"]] == [refused]
    text = client.get(path, params={"format": "text"}, headers=admin)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "Données détenues par Trivue sur le foyer bin:BAC-0042" in text.text
    assert client.get("/api/reminders/households/maison-12/access", headers=admin).status_code == 422
    erased = client.delete("/api/reminders/households/bin:BAC-0042", headers=admin)
    assert erased.status_code == 200 and erased.json()["dead_letters"] == 2


def refused_lift(city: City, session: Session, bin_id: str | None, truck: str = "benne-07") -> str:
    """A contaminated lift and its photo from a truck not yet in ``known_trucks``: two dead letters
    (``unknown_truck``) held whole for a replay, the lift's holding its bin tag and GPS fix."""
    kept = city.settings
    city.settings = kept.model_copy(update={"known_trucks": ["benne-01"]})
    try:
        target = city.addresses["target"]
        return city.lift(session, "refused", (target.lat, target.lon), 1, DIRTY[0], bin_id=bin_id, truck=truck)
    finally:
        city.settings = kept


def letter_events(session: Session) -> dict[int, str]:
    """Dead letter id -> ``lift:<event id>`` or ``photo:<event id>`` (read before a payload is emptied)."""
    return {x.id: (f"photo:{x.topic.rsplit('/', 1)[1]}" if "/evidence/" in x.topic else
                   f"lift:{json.loads(x.payload)['event_id']}") for x in session.scalars(select(DeadLetter))}


def test_erasure_empties_the_dead_letters_naming_the_households_bin(city: City) -> None:
    """A refused lift's letter kept the household's bin tag and GPS fix, and its photo's letter the
    photo, whole (for a replay) for up to 365 days after an erasure that said it was done; the
    household had no contact nor reminder, so the erasure even answered « aucune donnée »."""
    with city.sessions() as session:
        ours = refused_lift(city, session, "BAC-0042")
        neighbour = refused_lift(city, session, "BAC-00421")  # the tag's prefix: another bin
        untagged = refused_lift(city, session, None)
        session.commit()
        events = letter_events(session)
        assert len(events) == 6 and all(len(x.payload) == x.payload_size for x in session.scalars(select(DeadLetter)))
        done = erase_household(session, "bin:BAC-0042", "test", note="demande 13")
        session.commit()
    assert done["dead_letters"] == 2  # the lift's letter and its photo's
    with city.sessions() as session:
        rows = {x.id: x for x in session.scalars(select(DeadLetter))}
        assert {events[i] for i, x in rows.items() if not x.payload} == {f"lift:{ours}", f"photo:{ours}"}
        assert {events[i] for i, x in rows.items() if len(x.payload) == x.payload_size} == {
            f"{kind}:{event}" for kind in ("lift", "photo") for event in (neighbour, untagged)}  # whole, replayable
        emptied = [x for x in rows.values() if not x.payload]
        assert all(x.payload_size > 0 and x.lift_started_at is None for x in emptied)  # counted, never replayed
        assert all("erased at the household's request" in x.detail for x in emptied)
        trail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "reminders.household.erase")).one()
    assert "dead_letters=2" in trail
    with city.sessions() as session:  # again: nothing left to empty
        assert erase_household(session, "bin:BAC-0042", "test")["dead_letters"] == 0


def test_access_and_erasure_find_the_address_by_its_registered_bins(city: City) -> None:
    """For ``address:<id>`` the letters naming a tag the registry places at the address are the
    household's (a dead letter is matched to no address: an untagged one is not found, said so)."""
    target = city.addresses["target"]
    key = f"address:{target.id}"
    with city.sessions() as session:
        session.add(Bin(tag="BAC-7", address_id=target.id, imported_at=utcnow()))
        ours = refused_lift(city, session, "BAC-7")
        refused_lift(city, session, None)  # at the address by its fix, but no tag: not the household's for sure
        session.commit()
        report = household_access(session, key, "test", city.settings.zone)
        session.commit()
    [letter] = report["messages_refusés"]
    assert (letter["levée"], letter["étiquette_du_bac"], letter["motif"]) == (ours, "BAC-7", "unknown_truck")
    assert letter["position_gps"] == pytest.approx([target.lat, target.lon])
    assert letter["photos"] == 1 and letter["contenu_gardé"] == "message entier"
    assert "Messages refusés par le serveur qui nomment un bac du foyer : 1" in access_text(report)
    assert "sans étiquette" in access_text(report)  # what cannot be found, said to the household
    with city.sessions() as session:
        trail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "reminders.household.access")
                                ).one()
        assert "dead_letters=1" in trail and "BAC-7" not in trail
        session.add(Contact(key=key, name=NAME))
        assert erase_household(session, key, "test")["dead_letters"] == 2
        session.commit()
        assert household_access(session, key, "test", city.settings.zone)["messages_refusés"] == []


def test_access_lists_the_registered_bins_by_tag(city: City) -> None:
    """Read without ORDER BY, an address's bins came in the table's order (the order they were
    imported in; on SQLite reversed by ``reverse_unordered_selects``): by tag on both databases."""
    target = city.addresses["target"]
    key = f"address:{target.id}"
    with city.sessions() as session:
        session.add_all([Bin(tag=tag, address_id=target.id, imported_at=utcnow())
                         for tag in ("BAC-9", "BAC-1", "BAC-5")])
        session.commit()
        reports, sqlite = [], session.get_bind().dialect.name == "sqlite"
        for reverse in (0, 1) if sqlite else (0,):
            if sqlite:
                session.execute(text(f"PRAGMA reverse_unordered_selects = {reverse}"))
            reports.append(household_access(session, key, "test", city.settings.zone))
            session.rollback()
    for report in reports:
        assert [b["étiquette"] for b in report["bacs_au_registre"]] == ["BAC-1", "BAC-5", "BAC-9"]


# A clock time not followed by its offset (``14:03``, ``14:03:00``), the offsets themselves left out.
ZONELESS_TIME = re.compile(r"(?<![\d:+-])\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?![\d:.])(?![+-]\d{2}:\d{2}|Z)")


def test_every_time_in_the_access_file_says_its_zone(city: City) -> None:
    """The text file's header said « Produit le … (UTC) » and gave the lifts' times in local time
    (the collectivité's zone) without saying so: a lift at 07:30 in Orléans read as 07:30 UTC, an
    hour off in winter. Every time now carries its offset, and the zone is named, text and JSON."""
    key = "bin:BAC-0042"
    with city.sessions() as session:
        refused_lift(city, session, "BAC-0042")
        session.add(Bin(tag="BAC-0042", address_id=city.addresses["target"].id, imported_at=utcnow()))
        session.add(Contact(key=key, name=NAME, updated_at=utcnow()))
        session.commit()
        report = household_access(session, key, "test", city.settings.zone)
        session.commit()
    assert report["fuseau_horaire"] == "Europe/Paris" and report["levées"] and report["messages_refusés"]
    assert report["produit_le"].endswith("+01:00")  # November in Europe/Paris
    assert report["levées"][0]["heure"].endswith("+01:00")
    assert not ZONELESS_TIME.findall(json.dumps(report, ensure_ascii=False))
    written = access_text(report)
    assert "(UTC)" not in written and "Europe/Paris" in written.splitlines()[1]
    assert not ZONELESS_TIME.findall(written), ZONELESS_TIME.findall(written)


def test_an_opt_out_for_a_key_nothing_is_known_about_says_so(city: City, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``opt-out address:999999`` (a typo: no such address, no contact, no reminder) answered « ne
    recevra plus de rappels » as for a known household. The opposition is still recorded (it may be
    made in advance), but the answer says nothing is known of the key yet, on the API too."""
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    assert main(["reminders", "opt-out", "address:999999"]) == 0
    said = capsys.readouterr().out
    assert "ne recevra plus de rappels" in said and "ne connaît encore rien de ce foyer" in said
    assert main(["reminders", "opt-out", f"address:{city.addresses['target'].id}"]) == 0  # an address on file
    assert "ne connaît encore rien" not in capsys.readouterr().out
    app = create_app(city.settings, city.sessions.kw["bind"], start_ingest=False)
    with city.sessions() as session:
        session.add(Bin(tag="BAC-7", imported_at=utcnow()))  # in the registry, never lifted yet
        manager = {"Authorization": f"Bearer {create_token(session, 'manager', 'test-manager')}"}
        session.commit()
    client = TestClient(app)
    answers = {key: client.post(f"/api/reminders/households/{key}/opt-out", json={}, headers=manager)
               for key in ("bin:BAC-9999", "bin:BAC-0042", "bin:BAC-7", "bin:bac-0042")}  # BAC-0042: lifts only
    # A tag has one canonical form everywhere (base.bin_tags: the reader's, the registry's, ingest's): a
    # case slip names the same bin, and its opposition is the household's.
    assert {k: (a.status_code, a.json()["known"]) for k, a in answers.items()} == {
        "bin:BAC-9999": (200, False), "bin:BAC-0042": (200, True), "bin:BAC-7": (200, True),
        "bin:bac-0042": (200, True)}
    assert "ne connaît encore rien de ce foyer" in answers["bin:BAC-9999"].json()["detail"]
    assert answers["bin:BAC-0042"].json()["detail"] is None
    with city.sessions() as session:
        assert {"address:999999", "bin:BAC-9999"} <= set(session.scalars(select(OptOut.key)))
