"""A household's rights as the DPO honours them: access (art. 15) gives everything held about one
key, in French, audited without copying the data into the trail; erasure (art. 17) forgets at least
what the retention's expiry forgets (letter PDF, delivery detail, Message-ID, reviewer's note, the
campaigns' recorded exclusions). SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.app import create_app
from server.audit import AuditEntry
from server.db import utcnow
from server.ingest.overrule import overrule
from server.reminders.households import erase_household
from server.reminders.models import Campaign, Contact, Item
from server.web.auth import create_token
from tests.server.reminders_city import City, engine_for, seed_city
from trivue.cli import main

TODAY = date(2026, 11, 20)
NAME, EMAIL = "Mme Odile Martin", "odile.martin@example.fr"


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
        overrule(session, city.events["target"][0], "user:gestion", "Photo du foyer : compost", utcnow())
        session.commit()
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "false")  # a person's right: whatever the switch says
    assert main(["reminders", "opt-out", key, "--by", "dpo"]) == 0
    out = tmp_path / "acces.json"
    assert main(["reminders", "access", key, "--out", str(out), "--json", "--by", "dpo"]) == 0
    assert "levée(s)" in capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["adresse"]["libellé"] == target.label
    assert report["contact"]["nom"] == NAME and report["opposition"] is not None
    lifts = {lift["identifiant"]: lift for lift in report["levées"]}
    assert set(city.events["target"]) <= set(lifts)
    assert sum(lifts[e]["photo_conservée"] for e in city.events["target"]) == 3  # the contaminated ones
    disputed = lifts[city.events["target"][0]]  # overruled before the export: the household reads it
    assert disputed["jugement_contesté"]["motif"] == "Photo du foyer : compost" and disputed["modèle"]["version"]
    assert all(lifts[e]["jugement_contesté"] is None for e in city.events["target"][1:])
    assert [r["statut"] for r in report["rappels"]] == ["envoyé"]
    assert "reminders.household.opt_out" in {e["action"] for e in report["journal_d_audit"]}
    text = tmp_path / "acces.txt"
    assert main(["reminders", "access", key, "--out", str(text)]) == 0
    written = text.read_text(encoding="utf-8")
    assert target.label in written and "Levées de bac attribuées au foyer : " in written and "Octobre" in written
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
    assert not letter.exists()


def test_right_of_access_on_the_api_is_for_admins(city: City) -> None:
    engine = city.sessions.kw["bind"]
    app = create_app(city.settings, engine, start_ingest=False)
    with city.sessions() as session:
        tokens = {role: create_token(session, role, f"test-{role}") for role in ("manager", "admin")}
        session.commit()
    client = TestClient(app)
    path = "/api/reminders/households/bin:BAC-0042/access"
    # A manager reading an address's lifts this way would walk round the household-level switch.
    assert client.get(path, headers={"Authorization": f"Bearer {tokens['manager']}"}).status_code == 403
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    report = client.get(path, headers=admin).json()
    assert {x["identifiant"] for x in report["levées"]} == set(city.events["bin"])
    text = client.get(path, params={"format": "text"}, headers=admin)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "Données détenues par Trivue sur le foyer bin:BAC-0042" in text.text
    assert client.get("/api/reminders/households/maison-12/access", headers=admin).status_code == 422
