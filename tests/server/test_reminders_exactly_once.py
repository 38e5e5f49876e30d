"""Exactly-once sending on SQLite and PostgreSQL: concurrent sends from threads and from two
processes, a send killed (SIGKILL) in the middle, temporary and permanent failures with retry.

Mail goes to a plain local aiosmtpd server (``security: none``, as a local relay); the sends
under test are the real ``Dispatcher`` and the real ``trivue reminders`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from server.audit import AuditEntry
from server.db import utcnow
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.dispatch import Dispatcher
from server.reminders.households import import_contacts
from server.reminders.models import Item
from server.reminders.plan import make_plan
from tests.server.reminders_city import RULES, City, Relay

TODAY = date(2026, 11, 20)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


def rules_for(port: int, **channels: Any) -> RemindersConfig:
    smtp = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "tri@metropole.example.fr",
            "timeout_s": 5}
    return RemindersConfig(channels={"smtp": smtp, **channels}, contact={"email": "tri@metropole.example.fr"})


def approved_campaign(city: City, rules: RemindersConfig, emails: dict[str, str]) -> tuple[int, dict[str, str]]:
    """A campaign whose items are all approved; ``emails``: address role or bin id -> e-mail."""
    keys = {(f"bin:{role}" if role.startswith("BAC") else f"address:{city.addresses[role].id}"): mail
            for role, mail in emails.items()}
    with city.sessions() as session:
        csv = "key,email\n" + "".join(f"{key},{mail}\n" for key, mail in keys.items())
        assert import_contacts(session, csv, "test", "contacts.csv").imported == len(keys)
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
        session.flush()
        for item in session.scalars(select(Item).where(Item.campaign_id == campaign.id)):
            review(session, item.id, Decision(True), "test")
        session.commit()
        return campaign.id, keys


def sends(city: City) -> Counter[str]:
    """``reminders.send`` audit rows per item."""
    with city.sessions() as session:
        return Counter(session.scalars(select(AuditEntry.target).where(AuditEntry.action == "reminders.send")))


def statuses(city: City, campaign_id: int) -> dict[str, str]:
    with city.sessions() as session:
        return {i.target_key: i.status for i in session.scalars(select(Item).where(Item.campaign_id == campaign_id))}


HOUSEHOLDS = {"target": "martin@example.fr", "opted_out": "durand@example.fr", "BAC-0042": "petit@example.fr"}


def test_concurrent_sends_from_threads_send_each_item_once(city: City, smtp_relay: tuple[Relay, int],
                                                          tmp_path: Path) -> None:
    inbox, port = smtp_relay
    rules = rules_for(port)
    campaign_id, _keys = approved_campaign(city, rules, HOUSEHOLDS)
    barrier, reports = threading.Barrier(4), []

    def send() -> None:
        with city.sessions() as session:
            dispatcher = Dispatcher(session, rules, city.settings.evidence_path, tmp_path / "out", "test",
                                    sorting_rules=RULES, today=TODAY)
            barrier.wait()
            reports.append(dispatcher.send_campaign(campaign_id))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(reports) == 4
    assert sorted(to for to, _ in inbox.messages) == sorted(HOUSEHOLDS.values())  # one e-mail each
    total = Counter()
    for report in reports:
        total.update(report.sent)
    assert total == {"email": 3, "print": 2}  # the street notice and the thanks, once too
    assert set(sends(city).values()) == {1} and len(sends(city)) == 5
    assert set(statuses(city, campaign_id).values()) == {"sent"}


def _cli(city: City, rules_file: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TRIVUE_DATABASE_URL": city.settings.db_url, "TRIVUE_DATA_DIR": str(city.settings.data_dir),
           "TRIVUE_HOUSEHOLD_LEVEL": "true", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "trivue", "reminders", *args, "--rules", str(rules_file)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rules_file(path: Path, rules: RemindersConfig) -> Path:
    path.write_text(yaml.safe_dump(rules.model_dump(mode="json", exclude_defaults=True)), encoding="utf-8")
    return path


def test_two_processes_send_each_item_once(city: City, smtp_relay: tuple[Relay, int], tmp_path: Path) -> None:
    inbox, port = smtp_relay
    rules = rules_for(port)
    campaign_id, _keys = approved_campaign(city, rules, HOUSEHOLDS)
    rules_file = _rules_file(tmp_path / "rules.yaml", rules)
    processes = [_cli(city, rules_file, "send", "--campaign", str(campaign_id)) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sorted(to for to, _ in inbox.messages) == sorted(HOUSEHOLDS.values())
    assert set(sends(city).values()) == {1} and len(sends(city)) == 5
    assert set(statuses(city, campaign_id).values()) == {"sent"}


def test_send_killed_mid_delivery_is_resolved_by_the_next(city: City, smtp_relay: tuple[Relay, int],
                                                         tmp_path: Path) -> None:
    """SIGKILL while the relay holds an accepted message: the next send resends it with the same
    Message-ID (one message for the household), and sends what the killed one never reached."""
    inbox, port = smtp_relay
    rules = rules_for(port, sending_lease_s=1)
    campaign_id, keys = approved_campaign(city, rules, HOUSEHOLDS)
    inbox.stall_on = HOUSEHOLDS["opted_out"]
    process = _cli(city, _rules_file(tmp_path / "rules.yaml", rules), "send", "--campaign", str(campaign_id))
    assert inbox.stalled.wait(90), process.communicate(timeout=5)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    stalled_key = next(k for k, mail in keys.items() if mail == HOUSEHOLDS["opted_out"])
    assert statuses(city, campaign_id)[stalled_key] == "sending"
    inbox.stall_on = None
    with city.sessions() as session:  # a send right now leaves it: its claim may still be alive
        report = Dispatcher(session, rules.model_copy(update={"channels": rules.channels.model_copy(
            update={"sending_lease_s": 3600})}), city.settings.evidence_path, tmp_path / "out", "test",
            sorting_rules=RULES, today=TODAY).send_campaign(campaign_id)
        assert not report.recovered
    time.sleep(1.2)  # past the lease
    with city.sessions() as session:
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path / "out", "test",
                            sorting_rules=RULES, today=TODAY).send_campaign(campaign_id)
    assert len(report.recovered) == 1
    assert set(statuses(city, campaign_id).values()) == {"sent"}
    ids: dict[str, set[str]] = {}
    for to, message_id in inbox.messages:
        ids.setdefault(to, set()).add(message_id)
    assert sorted(ids) == sorted(HOUSEHOLDS.values())
    assert all(len(v) == 1 for v in ids.values()), ids  # resent alike: one message per household
    assert set(sends(city).values()) == {1} and len(sends(city)) == 5


def test_sms_interrupted_is_not_resent_automatically(city: City, tmp_path: Path) -> None:
    """At most once for SMS: an item a killed send left in ``sending`` fails with the reason."""
    rules = RemindersConfig(channels={"order": ["sms", "letter"], "sms": {"url": "http://127.0.0.1:9/none"},
                                      "sending_lease_s": 1})
    with city.sessions() as session:
        key = f"address:{city.addresses['target'].id}"
        import_contacts(session, f"key,phone\n{key},06 98 76 54 32\n", "test", "c.csv")
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        item = session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.target_key == key)).one()
        item.status, item.channel, item.claimed_at = "sending", "sms", utcnow() - timedelta(seconds=5)
        session.commit()
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test",
                            sorting_rules=RULES, today=TODAY).send_campaign(campaign.id)
        session.refresh(item)
    assert item.status == "failed" and "au plus une fois" in (item.send_detail or "")
    assert report.recovered and not report.sent


def test_temporary_failure_retries_with_back_off_permanent_fails(city: City, smtp_relay: tuple[Relay, int],
                                                                 tmp_path: Path) -> None:
    inbox, port = smtp_relay
    rules = rules_for(port, retry={"max_attempts": 2, "first_delay_s": 600})
    emails = {"target": "later@example.fr", "opted_out": "nobody@example.fr", "BAC-0042": "petit@example.fr"}
    campaign_id, keys = approved_campaign(city, rules, emails)
    by_mail = {mail: key for key, mail in keys.items()}
    now = utcnow()

    def send(at: Any) -> Any:
        with city.sessions() as session:
            return Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test", sorting_rules=RULES,
                              today=TODAY, clock=lambda: at).send_campaign(campaign_id)

    report = send(now)
    state = statuses(city, campaign_id)
    assert state[by_mail["later@example.fr"]] == "retry" and state[by_mail["nobody@example.fr"]] == "failed"
    assert "451" in report.retrying[0] and "550" in report.failed[0]
    with city.sessions() as session:
        waiting = session.scalars(select(Item).where(Item.target_key == by_mail["later@example.fr"])).one()
        assert waiting.next_attempt_at == now + timedelta(seconds=600) and waiting.attempts == 1
    assert not send(now + timedelta(seconds=60)).retrying  # not due yet: untouched
    report = send(now + timedelta(seconds=601))  # second and last attempt: fails for good
    assert statuses(city, campaign_id)[by_mail["later@example.fr"]] == "failed"
    assert "451" in report.failed[0]
    assert [to for to, _ in inbox.messages] == ["petit@example.fr"]


def test_no_contact_fails_permanently_and_retry_after_fixing(city: City, smtp_relay: tuple[Relay, int],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A bin with no address nor contact: "aucune coordonnée"; fixed contacts, then ``reminders retry``."""
    from trivue.cli import main

    inbox, port = smtp_relay
    rules = rules_for(port)
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "c", "test", rules)
        session.flush()
        for item in session.scalars(select(Item).where(Item.campaign_id == campaign.id)):
            review(session, item.id, Decision(True), "test")
        session.commit()
    with city.sessions() as session:
        report = Dispatcher(session, rules, city.settings.evidence_path, tmp_path, "test",
                            sorting_rules=RULES, today=TODAY).send_campaign(campaign.id)
    (failure,) = report.failed
    assert "bin:BAC-0042" in failure and "aucune coordonnée" in failure
    with city.sessions() as session:
        import_contacts(session, "key,email\nbin:BAC-0042,petit@example.fr\n", "test", "c.csv")
        session.commit()
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    rules_file = _rules_file(tmp_path / "rules.yaml", rules)
    assert main(["reminders", "retry", "--campaign", str(campaign.id), "--rules", str(rules_file)]) == 0
    out = capsys.readouterr().out
    assert "1 élément remis à envoyer" in out and "courriel 1" in out
    assert [to for to, _ in inbox.messages] == ["petit@example.fr"]
    assert statuses(city, campaign.id)["bin:BAC-0042"] == "sent"
    with city.sessions() as session:
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "reminders.item.retry")) is not None
