"""The household-level switch (``server.web.privacy``): off by default, street level only while off.

The same city (real Rennes streets and BAN addresses, lifts with RFID tags and sure addresses,
``tests.server.reminders_city``) is served with the switch off and on, on SQLite and PostgreSQL:
while off, no address, bin tag, GPS fix or household key leaves the API, the pages or the exports;
household reminders and the contacts import are refused with a French message naming the admin;
street campaigns still work; a person's opt-out and erasure are always honoured. Every read of
household-level data and every export leaves an audit entry (who, when, what).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from server.app import create_app
from server.audit import AuditEntry
from server.config import ConfigError, load_settings
from server.db import utcnow
from server.ingest.models import DeadLetter, Lift
from server.reminders.models import Contact
from server.web.auth import create_token
from server.web.privacy import OFF_MESSAGE
from tests.server.reminders_city import City, engine_for, seed_city
from tests.server.test_reminders_send import pdf_text

TODAY = date(2026, 11, 20)
ORIGIN = {"Origin": "http://testserver"}
CONTACTS = "key,name,email,phone,postal_address\nbin:BAC-0042,Mme Exemple,ex@example.fr,,3 rue Hoche\n"


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


class Served:
    """One city's database served by two apps: the switch off (the default) and on."""

    def __init__(self, city: City, engine: Engine) -> None:
        self.city = city
        off = city.settings.model_copy(update={"household_level": False})
        self.off = TestClient(create_app(off, engine, start_ingest=False))
        self.on = TestClient(create_app(city.settings, engine, start_ingest=False))
        with city.sessions() as session:
            self.tokens = {role: create_token(session, role, f"test-{role}") for role in ("viewer", "manager")}
            session.commit()

    def headers(self, role: str = "manager") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, client: TestClient, path: str, **kwargs: Any) -> Any:
        response = client.get(path, headers=self.headers(), **kwargs)
        assert response.status_code == 200, (path, response.text[:300])
        return response

    def audit(self, action: str) -> list[AuditEntry]:
        with self.city.sessions() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                        .order_by(AuditEntry.id)))

    def household_markers(self) -> list[str]:
        """Strings that only household-level data would put in a response."""
        a = self.city.addresses
        return ["BAC-0042", a["target"].label, a["bin_home"].label, f"address:{a['target'].id}", "bin:BAC-0042"]


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Served]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield Served(seed_city(engine, tmp_path, TODAY), engine)


def assert_street_level(served: Served, text: str, where: str) -> None:
    for marker in served.household_markers():
        assert marker not in text, f"{where} shows {marker!r} while the household level is off"


def test_the_switch_is_off_by_default_and_only_the_settings_turn_it_on(tmp_path: Path) -> None:
    assert load_settings(env={}).household_level is False
    assert load_settings(env={"TRIVUE_HOUSEHOLD_LEVEL": "true"}).household_level is True
    config = tmp_path / "server.yaml"
    config.write_text("household_level: yes\n")
    assert load_settings(config, env={}).household_level is True
    config.write_text("household_levels: true\n")  # a typo is an error, never a silent default
    with pytest.raises(ConfigError, match="household_levels"):
        load_settings(config, env={})


def test_lifts_and_dead_letters_are_street_level_while_off(served: Served) -> None:
    with served.city.sessions() as session:
        bin_lift = session.scalar(select(Lift.event_id).where(Lift.bin_id == "BAC-0042").limit(1))
        session.add(DeadLetter(received_at=utcnow(), topic="t/benne-01/lift", truck_id="benne-01", reason="schema",
                               detail="bad", payload=b'{"bin_id": "BAC-0042", "gps": {"lat": 48.1}}',
                               payload_size=44))
        session.commit()
    page = served.get(served.off, "/api/lifts", params={"limit": 1000}).json()
    assert page["items"] and all(x["bin_id"] is None and x["address"] is None and x["gps"] is None
                                 for x in page["items"])
    assert any(x["street"] for x in page["items"])  # the street stays
    one = served.get(served.off, f"/api/lifts/{bin_lift}")
    dead = served.get(served.off, "/api/dead-letters")
    for name, response in (("lifts", page), ("lift", one.json()), ("dead letters", dead.json())):
        assert_street_level(served, json.dumps(response, ensure_ascii=False), name)
    assert dead.json()["items"][0]["payload_head"] is None

    # The same server with the switch on: the household data were kept, now they show.
    page_on = served.get(served.on, "/api/lifts", params={"limit": 1000}).json()
    # street level hides the household, never the street: each lift keeps the street it has with the switch on
    assert {x["event_id"]: x["street"] for x in page["items"]} == {x["event_id"]: x["street"] for x in page_on["items"]}
    assert any(x["bin_id"] == "BAC-0042" for x in page_on["items"])
    assert any(x["address"] and x["address"]["label"] == served.city.addresses["target"].label
               for x in page_on["items"])
    assert "BAC-0042" in served.get(served.on, "/api/dead-letters").json()["items"][0]["payload_head"]
    reads = served.audit("lift.read")
    assert [(r.actor, r.target) for r in reads] == [("token:test-manager", bin_lift)]
    assert reads[0].detail == "street level"
    served.get(served.on, f"/api/lifts/{bin_lift}")
    assert "bin=BAC-0042" in served.audit("lift.read")[-1].detail  # what was seen, at household level
    assert {r.detail.rsplit("=", 1)[1] for r in served.audit("lifts.list")} == {"False", "True"}
    assert all("Filter(" not in r.detail for r in served.audit("lifts.list"))
    assert len(served.audit("dead_letters.read")) == 2


def test_household_reminders_are_refused_street_campaigns_work_while_off(served: Served) -> None:
    city, off, manager = served.city, served.off, served.headers()
    plan = served.get(off, "/api/reminders/plan", params={"until": TODAY.isoformat()}).json()
    assert plan["targets"] and {t["kind"] for t in plan["targets"]} <= {"street", "thanks"}
    assert f"street:{city.streets['dirty']}" in {t["key"] for t in plan["targets"]}
    assert_street_level(served, json.dumps(plan, ensure_ascii=False), "the plan")
    created = off.post("/api/reminders/campaigns", json={"name": "Rues", "until": TODAY.isoformat()},
                       headers=manager)
    assert created.status_code == 201, created.text
    campaign = served.get(off, f"/api/reminders/campaigns/{created.json()['id']}").json()
    assert campaign["household_level"] is False and campaign["hidden_household_items"] == 0
    street = next(i for i in campaign["items"] if i["kind"] == "street")
    assert off.post(f"/api/reminders/items/{street['id']}/review", json={"decision": "approve"},
                    headers=manager).status_code == 200
    sent = off.post(f"/api/reminders/campaigns/{campaign['id']}/send", headers=manager)
    assert sent.status_code == 200 and sent.json()["sent"] == {"print": 1}, sent.text

    for response in (off.get("/api/reminders/households", headers=manager),
                     off.post("/api/reminders/households/import", content=CONTACTS.encode(),
                              headers={**manager, "Content-Type": "text/csv"})):
        assert response.status_code == 409
        assert "administrateur" in response.json()["detail"] and OFF_MESSAGE in response.json()["detail"]
    with city.sessions() as session:
        assert session.get(Contact, "bin:BAC-0042") is None
    # A person's rights do not wait for a switch.
    assert off.post("/api/reminders/households/bin:BAC-0042/opt-out", json={}, headers=manager).status_code == 200
    assert off.delete("/api/reminders/households/bin:BAC-0042", headers=manager).status_code == 200


def test_a_campaign_made_at_household_level_is_hidden_when_the_switch_goes_off(served: Served) -> None:
    on, off, manager = served.on, served.off, served.headers()
    imported = on.post("/api/reminders/households/import", content=CONTACTS.encode(),
                       headers={**manager, **ORIGIN, "Content-Type": "text/csv"})
    assert imported.status_code == 200 and imported.json()["imported"] == 1
    created = on.post("/api/reminders/campaigns", json={"name": "Foyers", "until": TODAY.isoformat()},
                      headers=manager).json()
    items = served.get(on, f"/api/reminders/campaigns/{created['id']}").json()["items"]
    households = [i for i in items if i["kind"] == "household"]
    assert households
    for item in households:
        on.post(f"/api/reminders/items/{item['id']}/review", json={"decision": "approve"}, headers=manager)
    visit = households[0]

    seen = served.get(off, f"/api/reminders/campaigns/{created['id']}").json()
    assert seen["hidden_household_items"] == len(households)
    assert {i["kind"] for i in seen["items"]} <= {"street", "thanks"}
    assert_street_level(served, json.dumps(seen, ensure_ascii=False), "the campaign")
    refused = [off.post(f"/api/reminders/items/{visit['id']}/review", json={"decision": "approve"}, headers=manager),
               off.get(f"/api/reminders/items/{visit['id']}/preview", headers=manager),
               off.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager)]
    assert [r.status_code for r in refused] == [409, 409, 409]
    assert all("administrateur" in r.json()["detail"] for r in refused)
    sheet = served.get(off, f"/api/reminders/campaigns/{created['id']}/route-sheet.pdf")
    assert_street_level(served, pdf_text(sheet.content), "the route sheet")
    effect = served.get(off, f"/api/reminders/campaigns/{created['id']}/effect", params={"format": "csv"})
    assert_street_level(served, effect.text, "the effect export")

    sent = on.post(f"/api/reminders/campaigns/{created['id']}/send", headers=manager)  # switched back on
    assert sent.status_code == 200, sent.text
    letters = [n for n in sent.json()["files"] if n.startswith("courrier")]
    assert letters
    path = f"/api/reminders/campaigns/{created['id']}/files/{letters[0]}"
    assert off.get(path, headers=manager).status_code == 409
    assert on.get(path, headers=manager).status_code == 200


def test_the_reminders_page_says_which_level_the_server_works_at(served: Served) -> None:
    off = served.get(served.off, "/rappels").text
    assert 'class="rem-level off"' in off and "Un administrateur doit activer le niveau foyer" in off
    assert 'id="contacts-file"' not in off  # no import form that can only be refused
    on = served.get(served.on, "/rappels").text
    assert 'class="rem-level on"' in on and 'id="contacts-file"' in on
    assert served.get(served.off, "/api/me").json()["household_level"] is False
    for page in ("/carte", "/classement", "/rappels"):  # the menu links the reminders page everywhere
        assert 'href="/rappels"' in served.get(served.off, page).text, page


def test_exports_and_household_reads_are_audited(served: Served) -> None:
    on, manager = served.on, served.headers()
    served.get(on, "/api/streets", params={"format": "csv"})
    on.get("/api/streets", headers={**served.headers("viewer"), "Accept": "text/csv"})
    exports = served.audit("streets.export")
    assert [e.actor for e in exports] == ["token:test-manager", "token:test-viewer"]
    assert all(e.at is not None and e.detail.startswith("csv, ") for e in exports)
    # the filter in words, not a dataclass's repr (the journal is read by people)
    assert all("Filter(" not in e.detail and "None" not in e.detail for e in exports), exports[0].detail
    served.get(on, "/api/reminders/households")
    served.get(on, "/api/reminders/false-detections", params={"format": "csv"})
    created = on.post("/api/reminders/campaigns", json={"name": "c", "until": TODAY.isoformat()},
                      headers=manager).json()
    served.get(on, f"/api/reminders/campaigns/{created['id']}/effect", params={"format": "csv"})
    served.get(on, f"/api/reminders/campaigns/{created['id']}/route-sheet.pdf")
    photo = next(p for i in served.get(on, f"/api/reminders/campaigns/{created['id']}").json()["items"]
                 for p in i["photos"])
    served.get(on, photo)
    for action in ("reminders.contacts.read", "reminders.false_detections.export", "reminders.effect.export",
                   "reminders.route_sheet.export", "reminders.campaign.read", "evidence.read"):
        entries = served.audit(action)
        assert entries and entries[-1].actor == "token:test-manager", action


def test_the_cli_obeys_the_switch(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from trivue.cli import main

    monkeypatch.setenv("TRIVUE_DATABASE_URL", served.city.settings.db_url)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "false")
    assert main(["reminders", "contacts", str(contacts), "--by", "test"]) == 2
    assert "Un administrateur doit activer le niveau foyer" in capsys.readouterr().err
    assert main(["reminders", "plan", "--until", TODAY.isoformat(), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["targets"] and {t["kind"] for t in plan["targets"]} <= {"street", "thanks"}
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    assert main(["reminders", "contacts", str(contacts), "--by", "test"]) == 0


def test_a_managers_opt_out_and_erasure_do_not_say_what_is_held_while_off(served: Served) -> None:
    """The opt-out's ``known`` (and an empty erasure's lift count) told a manager, with the switch off,
    whether a bin tag or an address number has lifts or sits in the registry: an oracle to walk
    through tags and addresses the switch hides. While off, a manager's answers are the same for a
    key with lifts and a key with nothing; an admin (who may read the access file) still learns it."""
    off, manager, target = served.off, served.headers(), served.city.addresses["target"].id
    with served.city.sessions() as session:
        admin = {"Authorization": f"Bearer {create_token(session, 'admin', 'test-admin')}"}
        session.commit()
    # Erasure first (an opposition recorded by the opt-outs below would make them erasable).
    erased = {key: off.delete(f"/api/reminders/households/{key}", headers=manager)
              for key in (f"address:{target}", "address:999999")}
    assert {r.status_code for r in erased.values()} == {404}
    held, empty = (r.json()["detail"].replace(key, "KEY") for key, r in erased.items())
    assert held == empty and not any(c.isdigit() for c in held), held  # no lift count
    assert "11 levées sont gardées" in off.delete(f"/api/reminders/households/address:{target}",
                                                   headers=admin).json()["detail"]
    said = {key: off.post(f"/api/reminders/households/{key}/opt-out", json={}, headers=manager).json()
            for key in ("bin:BAC-0042", "bin:BAC-9999")}  # BAC-0042: the city's lifts carry it
    assert {k: (r["opted_out"], r["known"]) for k, r in said.items()} == {
        "bin:BAC-0042": (True, None), "bin:BAC-9999": (True, None)}
    assert len({r["detail"].replace(k, "KEY") for k, r in said.items()}) == 1
    assert off.post("/api/reminders/households/bin:BAC-8888/opt-out", json={}, headers=admin).json()["known"] is False
    assert served.on.post("/api/reminders/households/bin:BAC-7777/opt-out", json={},
                          headers=manager).json()["known"] is False
