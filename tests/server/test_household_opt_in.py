"""Lifting a household's opposition (RGPD art. 21): the household changes its mind, or the agent typed
the wrong key. Before, an opposition could only be recorded (``trivue reminders opt-out``, the API,
the Rappels page) and lifted by SQL. Now: ``POST /api/reminders/households/{key}/opt-in`` (managers,
audited, the same key normalisation), ``trivue reminders opt-in KEY``, and the next campaign plan
targets the household again, never the items dropped while it was opposed. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.app import create_app
from server.audit import AuditEntry
from server.db import utcnow
from server.reminders.config import RemindersConfig
from server.reminders.households import NoOpposition, opt_in, opt_out
from server.reminders.models import SKIPPED, Campaign, Item, OptOut
from server.reminders.plan import make_plan
from server.web.auth import create_token
from tests.server.reminders_city import City, engine_for, seed_city
from trivue.cli import main

TODAY = date(2026, 11, 20)


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[City]:
    with engine_for(request.param, tmp_path, postgres_available) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def tokens(city: City) -> dict[str, dict[str, str]]:
    with city.sessions() as session:
        made = {role: {"Authorization": f"Bearer {create_token(session, role, f'test-{role}')}"}
                for role in ("manager", "viewer", "admin")}
        session.commit()
    return made


def trail(session: Session, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_a_household_opted_back_in_is_targeted_again_from_the_next_plan(city: City) -> None:
    """Opposed: the plan sets it aside and its unsent item is dropped. Opted back in: the dropped item
    stays dropped (no letter written while it said no goes out now), the next plan targets it."""
    key = f"address:{city.addresses['opted_out'].id}"
    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = Campaign(name="Octobre", created_by="test", since=date(2026, 10, 1), until=date(2026, 10, 31),
                            rules={})
        session.add(campaign)
        session.flush()
        item = Item(campaign_id=campaign.id, kind="household", level=1, target_key=key, street_id=1, lifts=2,
                    contaminated=2, categories={"verre": 2}, event_ids=[], reason="2 levées", status="approved")
        session.add(item)
        opt_out(session, key, "agent", "courrier du foyer")
        session.commit()
        opposed = make_plan(session, rules, TODAY)
        assert key not in {t.key for t in opposed.targets}
        assert "opposition" in {s.key: s.reason for s in opposed.skipped}[key]
        assert opt_in(session, key.replace(":", ":0"), "agent", "appel du foyer") == key  # address:0N is address:N
        session.commit()
        assert session.get(OptOut, key) is None
        assert session.get(Item, item.id).status == SKIPPED
        again = make_plan(session, rules, TODAY)
    assert key in {t.key for t in again.targets}
    assert key not in {s.key for s in again.skipped}


def test_lifting_an_opposition_that_does_not_exist_is_refused(city: City) -> None:
    with city.sessions() as session, pytest.raises(NoOpposition, match="aucune opposition"):
        opt_in(session, "address:999999", "agent")


def test_the_api_lifts_an_opposition_for_managers_with_an_audit_entry(city: City) -> None:
    app = create_app(city.settings, city.sessions.kw["bind"], start_ingest=False)
    client, who = TestClient(app), tokens(city)
    key = f"address:{city.addresses['target'].id}"
    typed = key.replace(":", ":00")  # as the opposition route: the key as items store it
    assert client.post(f"/api/reminders/households/{typed}/opt-out", json={}, headers=who["manager"]).status_code == 200
    assert client.post(f"/api/reminders/households/{key}/opt-in", json={}, headers=who["viewer"]).status_code == 403
    answer = client.post(f"/api/reminders/households/{typed}/opt-in", json={"note": "appel du 21/11"},
                         headers=who["manager"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["key"], body["opted_out"]) == (key, False)
    assert "prochaine campagne" in body["detail"]
    assert "known" not in body  # what Trivue holds on the key is not the question here
    with city.sessions() as session:
        assert session.get(OptOut, key) is None
        entry = trail(session, "reminders.household.opt_in")[-1]
        assert (entry.actor, entry.target) == ("token:test-manager", key) and entry.at is not None
        assert "appel du 21/11" in entry.detail and "by token:test-manager" in entry.detail  # who had recorded it
    again = client.post(f"/api/reminders/households/{key}/opt-in", json={}, headers=who["manager"])
    assert again.status_code == 404
    assert again.json()["detail"].startswith(f"aucune opposition enregistrée pour le foyer {key}")
    bad = client.post("/api/reminders/households/adresse:12/opt-in", json={}, headers=who["manager"])
    assert bad.status_code == 422 and "clé de foyer" in bad.json()["detail"]
    extra = client.post(f"/api/reminders/households/{key}/opt-in", json={"force": True}, headers=who["manager"])
    assert extra.status_code == 422
    with city.sessions() as session:  # a refusal records nothing
        assert len(trail(session, "reminders.household.opt_in")) == 1


def test_the_api_in_english_translates_the_refusal(city: City) -> None:
    app = create_app(city.settings, city.sessions.kw["bind"], start_ingest=False)
    client, who = TestClient(app), tokens(city)
    client.cookies.set("trivue_lang", "en")  # the page's language, as the Rappels page's requests carry it
    answer = client.post("/api/reminders/households/bin:BAC-1/opt-in", json={}, headers=who["manager"])
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("no opt-out recorded for household bin:BAC-1")


def test_the_list_of_oppositions_is_household_level_data(city: City, tmp_path: Path) -> None:
    """The list names households (keys, the requests' notes): managers with the household level on, audited."""
    key = f"address:{city.addresses['opted_out'].id}"
    with city.sessions() as session:
        opt_out(session, key, "agent", "courrier du 12/11")
        opt_out(session, "bin:BAC-0042", "agent")
        session.commit()
    app = create_app(city.settings, city.sessions.kw["bind"], start_ingest=False)
    client, who = TestClient(app), tokens(city)
    assert client.get("/api/reminders/households/opt-outs", headers=who["viewer"]).status_code == 403
    listed = client.get("/api/reminders/households/opt-outs", headers=who["manager"])
    assert listed.status_code == 200, listed.text
    rows = {row["key"]: row for row in listed.json()}
    assert set(rows) == {key, "bin:BAC-0042"}
    assert (rows[key]["by"], rows[key]["note"]) == ("agent", "courrier du 12/11") and rows[key]["at"]
    with city.sessions() as session:
        assert len(trail(session, "reminders.household.opt_outs.read")) == 1
    off = city.settings.model_copy(update={"household_level": False})
    client = TestClient(create_app(off, city.sessions.kw["bind"], start_ingest=False))
    assert client.get("/api/reminders/households/opt-outs", headers=who["manager"]).status_code == 409
    # Lifting is the household's own request: honoured whatever the switch says, as the opposition.
    assert client.post(f"/api/reminders/households/{key}/opt-in", json={}, headers=who["manager"]).status_code == 200


def test_opt_in_on_the_command_line(city: City, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_LANG", "fr")
    assert main(["reminders", "opt-out", "address:999999"]) == 0  # the typo: « vérifiez la clé »
    assert "vérifiez la clé" in capsys.readouterr().out
    assert main(["reminders", "opt-in", "address:0999999", "--by", "dpo", "--note", "clé mal saisie"]) == 0
    assert capsys.readouterr().out.strip() == ("address:999999 : recevra de nouveau des rappels, à partir de la "
                                               "prochaine campagne")
    with city.sessions() as session:
        assert session.get(OptOut, "address:999999") is None
        entry = trail(session, "reminders.household.opt_in")[-1]
        assert (entry.actor, entry.target) == ("cli:dpo", "address:999999") and "clé mal saisie" in entry.detail
    assert main(["reminders", "opt-in", "address:999999"]) == 2
    assert "aucune opposition enregistrée pour le foyer address:999999" in capsys.readouterr().err
    monkeypatch.setenv("TRIVUE_LANG", "en")
    with city.sessions() as session:
        session.add(OptOut(key="bin:BAC-7", at=utcnow(), by="agent"))
        session.commit()
    assert main(["reminders", "opt-in", "bin:BAC-7"]) == 0
    assert capsys.readouterr().out.strip() == "bin:BAC-7: will receive reminders again, from the next campaign"


def test_reminders_help_lists_opt_in_after_opt_out(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI split by domain left ``trivue reminders --help`` as it was, the new command in its place."""
    with pytest.raises(SystemExit):
        main(["reminders", "--help"])
    actions = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")
               and not line.startswith("     ")]
    assert actions == ["plan", "create", "items", "review", "send", "retry", "report", "contacts", "opt-out", "opt-in",
                       "erase", "access", "false-detections", "print"]
