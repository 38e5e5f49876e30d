"""What a waste manager, or someone trying it on, hit in the reminders and no other test caught:
retries sent past the household-level switch, a broken edited template leaving items stuck in
``sending`` behind a 500, a retry planned a second time, contact values the columns cannot hold,
one e-mail field reaching two mailboxes, an opposition that left a retry behind, lifts of other
streams or false detections in the counts. SQLite, and PostgreSQL where the database decides."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.db import utcnow
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.channels import ChannelError, Mailer
from server.reminders.config import RemindersConfig, SmtpChannel
from server.reminders.dispatch import Dispatcher
from server.reminders.effect import measure
from server.reminders.households import HouseholdError, check_key, erase_household, import_contacts, opt_out
from server.reminders.models import Contact, Item, OptOut
from server.reminders.plan import make_plan
from server.reminders.sending import claim
from server.web.auth import create_token
from tests.conftest import free_port
from tests.server.reminders_city import RULES, City, engine_for, seed_city
from trivue.cli import main
from vision.schema import Stream

TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[City, Any, dict[str, str]]]:
    """The city on SQLite, an app factory over its database, and a manager's headers."""
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            token = create_token(session, "manager", "test-manager")
            session.commit()

        def client(**settings: Any) -> TestClient:
            app = create_app(city.settings.model_copy(update=settings), engine, start_ingest=False)
            return TestClient(app, raise_server_exceptions=False)

        yield city, client, {"Authorization": f"Bearer {token}"}


def _campaign(client: TestClient, manager: dict[str, str]) -> list[dict[str, Any]]:
    created = client.post("/api/reminders/campaigns", json={"name": "c", "until": TODAY.isoformat()}, headers=manager)
    assert created.status_code == 201, created.text
    return client.get(f"/api/reminders/campaigns/{created.json()['id']}", headers=manager).json()["items"]


def test_household_retry_is_not_sent_once_the_household_level_is_off(served) -> None:  # type: ignore[no-untyped-def]
    """A household e-mail waiting for its retry when an admin turns the household level off: the
    next send used to deliver it (as a letter, even), since only approved items were checked."""
    city, client, manager = served
    on = client()
    item = next(i for i in _campaign(on, manager) if i["kind"] == "household")
    with city.sessions() as session:
        row = session.get(Item, item["id"])
        row.status, row.attempts, row.next_attempt_at = "retry", 1, utcnow() - timedelta(minutes=1)
        session.commit()
    off = client(household_level=False)
    for path in ("send", "retry"):
        refused = off.post(f"/api/reminders/campaigns/1/{path}", headers=manager)
        assert refused.status_code == 409, (path, refused.text)
    with city.sessions() as session:
        assert session.get(Item, item["id"]).status == "retry"
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action == "reminders.send")).all()


def test_a_broken_edited_template_fails_its_items_instead_of_a_500(served, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A collectivité's letter template with a typo: the preview and the send answered 500, and
    each send left one more item claimed in ``sending`` (untouchable for the lease's 15 minutes)."""
    city, client, manager = served
    own = tmp_path / "modeles"
    own.mkdir()
    (own / "letter.txt.j2").write_text("{{ greeting }} {{ foyer.nom }}\n", encoding="utf-8")
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"templates_dir: {own}\n", encoding="utf-8")
    monkeypatch.setenv("TRIVUE_REMINDERS_RULES", str(rules))
    api = client()
    items = _campaign(api, manager)
    letter = next(i for i in items if i["kind"] == "household" and i["planned_channel"] == "letter")
    preview = api.get(f"/api/reminders/items/{letter['id']}/preview", headers=manager)
    assert preview.status_code == 422 and "letter.txt.j2" in preview.json()["detail"]
    for item in items:
        api.post(f"/api/reminders/items/{item['id']}/review", json={"decision": "approve"}, headers=manager)
    sent = api.post("/api/reminders/campaigns/1/send", headers=manager)
    assert sent.status_code == 200, sent.text
    assert any("letter.txt.j2" in line for line in sent.json()["failed"]) and sent.json()["sent"]["print"] == 2
    with city.sessions() as session:
        statuses = {i.id: i.status for i in session.scalars(select(Item))}
    assert "sending" not in statuses.values() and statuses[letter["id"]] == "failed"


def test_an_item_waiting_for_its_retry_is_not_planned_again(city: City) -> None:
    """A household whose e-mail is in ``retry`` goes out by itself later: a new campaign used to
    target it again, and both messages went (the cooldown only looked at sent and pending items)."""
    rules = RemindersConfig()
    key = f"address:{city.addresses['target'].id}"
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        item = session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.target_key == key)).one()
        item.status, item.attempts, item.next_attempt_at = "retry", 1, utcnow() + timedelta(hours=1)
        session.commit()
        again = make_plan(session, rules, TODAY)
    assert key not in {t.key for t in again.targets}
    assert any(s.key == key and f"campagne {campaign.id}" in s.reason for s in again.skipped)


def test_contact_values_the_columns_cannot_hold_are_refused_by_line(city: City) -> None:
    """A 250-character name, a NUL byte: PostgreSQL refused the whole import with a 500."""
    a = city.addresses
    text = ("key;name;email;postal_address\n"
            f"address:{a['target'].id};{'Nom très long ' * 20};;\n"
            f"address:{a['once'].id};Mme\x00Martin;;\n"
            f"address:{a['clean'].id};M. Durand;{'d' * 250}@exemple.fr;\n"
            f"address:{a['bin_home'].id};Mme O'Brien-Éléonore;eleonore@exemple.fr;\n")
    with city.sessions() as session:
        report = import_contacts(session, text, "test", "test")
        session.commit()
        kept = [c.key for c in session.scalars(select(Contact))]
    assert report.imported == 1 and kept == [f"address:{a['bin_home'].id}"]
    assert [e.split(" : ")[1] for e in report.errors] == ["name", "name", "email"]
    with pytest.raises(HouseholdError):  # an address id is no 80-digit number: the key column overflowed
        check_key("address:" + "9" * 80)


def test_one_email_field_never_reaches_two_mailboxes(city: City) -> None:
    """``a,postmaster@relay.fr`` passed the check (one @) and the relay got two recipients."""
    with city.sessions() as session:
        report = import_contacts(session, f"key;email\naddress:{city.addresses['target'].id};a,postmaster@ex.fr\n",
                                 "test", "test")
    assert report.imported == 0 and "invalide" in report.errors[0]
    mailer = Mailer(SmtpChannel(host="127.0.0.1", port=free_port(), security="none", sender="tri@ex.fr"))
    with pytest.raises(ChannelError, match="invalide") as refused:  # a contact stored before the stricter check
        mailer.send("a,postmaster@ex.fr", "objet", "texte")
    assert not refused.value.temporary


def test_opt_out_and_erasure_drop_retries_and_failures(city: City, tmp_path: Path) -> None:
    """An item in ``retry`` (or failed, one click from « Réessayer ») stayed so after the household
    opted out or was erased; an approved item skipped at send time left no trace in the audit log."""
    rules = RemindersConfig()
    a = city.addresses
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        items = {i.target_key: i for i in session.scalars(select(Item).where(Item.campaign_id == campaign.id))}
        retrying, failed = items[f"address:{a['target'].id}"], items[f"address:{a['opted_out'].id}"]
        retrying.status, retrying.next_attempt_at = "retry", utcnow() - timedelta(minutes=1)
        failed.status = "failed"
        review(session, items["bin:BAC-0042"].id, Decision(True), "test")
        session.commit()
        opt_out(session, f"address:{a['opted_out'].id}", "test")
        erase_household(session, f"address:{a['target'].id}", "test")
        session.commit()
        assert (retrying.status, failed.status) == ("skipped", "skipped")
        opt_out(session, "bin:BAC-0042", "test")
        items["bin:BAC-0042"].status = "approved"  # approved again before the opposition reached it
        session.commit()
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test", sorting_rules=RULES,
                            today=TODAY).send_campaign(campaign.id)
        assert not report.failed and len(report.skipped) == 1
        skipped = session.scalars(select(AuditEntry).where(AuditEntry.action == "reminders.send.skipped")).all()
        assert [e.target for e in skipped] == [f"item:{items['bin:BAC-0042'].id}"]


def test_a_key_written_with_leading_zeros_is_the_same_household(city: City) -> None:
    """``opt-out address:03`` for the household address:3 (a number typed from a form) answered « ne
    recevra plus de rappels » but recorded the opposition under ``address:03``: its approved item
    stayed approved and went out, and the next plan targeted it again; a contact imported as
    ``address:03`` was never found, so the household got a letter « Aux occupants »."""
    rules = RemindersConfig()
    target = city.addresses["target"].id
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        item = session.scalars(select(Item).where(Item.campaign_id == campaign.id,
                                                  Item.target_key == f"address:{target}")).one()
        review(session, item.id, Decision(True), "test")
        session.commit()
        opt_out(session, f"address:00{target}", "test")
        import_contacts(session, f"key;email\naddress:0{target};lea@exemple.fr\n", "test", "test")
        session.commit()
        assert item.status == "skipped"
        assert [o.key for o in session.scalars(select(OptOut))] == [f"address:{target}"]
        assert [c.key for c in session.scalars(select(Contact))] == [f"address:{target}"]
    assert check_key(f"address:0{target}") == f"address:{target}"


def test_counts_keep_to_the_rules_streams_and_leave_false_detections_out(city: City) -> None:
    """With ``household.streams: [recyclables]`` a household's biowaste lifts counted in its letter's
    "N contaminated of M" and in its before/after, as did the street's lifts matched to its address
    with a 60 m fix (too vague to be its own), and a street notice showed the categories and photos
    of other streams and of lifts a reviewer had called false detections."""
    a = city.addresses
    where = (a["target"].lat, a["target"].lon)
    with city.sessions() as session:
        for days in (2, 6, 10, 14):  # a textile in the biowaste bin: another stream's error
            city.lift(session, "biowaste", where, days, {"textile": 1}, stream=Stream.biowaste)
        session.commit()
    rules = RemindersConfig(household={"streams": ["recyclables"]})
    key, street = f"address:{a['target'].id}", f"street:{city.streets['dirty']}"
    with city.sessions() as session:
        plan = {t.key: t for t in make_plan(session, rules, TODAY).targets}
        assert (plan[key].contaminated, plan[key].lifts) == (3, 5)
        assert "textile" not in plan[street].categories
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        item = session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.target_key == key)).one()
        review(session, item.id, Decision(False, "false_detection"), "test")
        notice = session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.target_key == street)).one()
        review(session, notice.id, Decision(False, "other"), "test")  # else the street waits in this campaign
        session.commit()
        false = set(item.event_ids)
        replanned = {t.key: t for t in make_plan(session, rules, TODAY).targets}
        assert false and not false & set(replanned[street].event_ids)

        sent_at = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=12)
        item.status, item.sent_at, campaign.started_at = "sent", sent_at, sent_at
        session.commit()
        report = measure(session, campaign, rules.effect, sent_at + timedelta(days=1), rules.household.streams)
    household = next(u for u in report["units"] if u["group"] == "household" and u["unit"] == key)
    assert (household["lifts_before"], household["contaminated_before"]) == (5, 3)


def test_cli_retry_of_an_unknown_item_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``retry --item 999`` printed « 0 élément(s) remis à envoyer », sent the campaign and exited 0;
    a 300-character ``--name`` or ``--by`` went to the database (PostgreSQL: a traceback)."""
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    assert main(["reminders", "create", "--until", TODAY.isoformat(), "--name", "N" * 300]) == 2
    assert "nom de campagne de 300 caractères : 200 au plus" in capsys.readouterr().err
    assert main(["reminders", "create", "--until", TODAY.isoformat(), "--by", "B" * 300]) == 2
    assert "1 à 64 caractères imprimables" in capsys.readouterr().err
    assert main(["reminders", "create", "--until", TODAY.isoformat()]) == 0
    assert main(["reminders", "review", "4", "--approve"]) == 0
    capsys.readouterr()
    assert main(["reminders", "retry", "--campaign", "1", "--item", "999"]) == 2
    assert "pas d'élément 999 en échec dans la campagne 1" in capsys.readouterr().err
    with city.sessions() as session:
        assert session.get(Item, 4).status == "approved"  # nothing was sent on the way


def test_a_claim_waits_for_a_review_in_progress(tmp_path: Path, postgres_available: bool) -> None:
    """A manager rejects an approved item while a send claims it: the claim went through (the
    review held no lock), the review then wrote « refusé » and the message left anyway. PostgreSQL:
    SQLite has no row locks (its writers take turns for the whole database)."""
    with engine_for("postgresql", tmp_path, postgres_available) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        rules = RemindersConfig()
        with city.sessions() as session:
            campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
            session.flush()
            item_id = session.scalars(select(Item.id).where(Item.campaign_id == campaign.id,
                                                            Item.kind == "street")).one()
            review(session, item_id, Decision(True), "test")
            session.commit()
        won: list[bool] = []

        def send() -> None:
            with city.sessions() as sender:
                won.append(claim(sender, item_id, utcnow()))

        with city.sessions() as reviewer:
            review(reviewer, item_id, Decision(False, "not_appropriate"), "manager")  # not committed yet
            thread = threading.Thread(target=send)
            thread.start()
            thread.join(1.5)
            waited = thread.is_alive()
            reviewer.commit()
        thread.join(30)
        with city.sessions() as session:
            assert (waited, won, session.get(Item, item_id).status) == (True, [False], "rejected")
