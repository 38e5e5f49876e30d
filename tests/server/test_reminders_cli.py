"""``trivue reminders`` end to end on a seeded SQLite database: plan (dry run), create, review,
send, report, opt-out, and one-line errors for bad input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.server.edited_rules import edited_rules
from tests.server.reminders_city import engine_for, seed_city
from tests.server.test_reminders_send import pdf_text
from trivue.cli import main

TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


def test_plan_create_review_send_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")  # household letters: the switch is on, explicitly
    rules = tmp_path / "rules.yaml"
    rules.write_text("household:\n  min_contaminated_lifts: 3\n")
    window = ["--since", "2026-10-22", "--until", TODAY.isoformat()]
    assert main(["reminders", "plan", *window, "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert city.addresses["target"].label in out and "(seuil : 3)" in out
    assert city.addresses["opted_out"].label not in out  # two lifts: under this file's threshold
    with city.sessions() as session:
        from server.reminders.models import Campaign

        assert session.query(Campaign).count() == 0  # a dry run stores nothing

    assert main(["reminders", "create", "--until", TODAY.isoformat(), "--name", "Essai", "--by", "agent"]) == 0
    assert "campagne 1" in capsys.readouterr().out
    assert main(["reminders", "items", "--campaign", "1"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    street = next(f[0] for f in lines if "rue" in f)
    assert all(f[1:3] == ["à", "relire"] for f in lines)
    assert main(["reminders", "send", "--campaign", "1"]) == 0
    assert "aucun" in capsys.readouterr().out  # nothing approved, nothing sent
    assert main(["reminders", "review", street, "--approve"]) == 0
    assert main(["reminders", "send", "--campaign", "1", "--out", str(tmp_path / "pdf")]) == 0
    out = capsys.readouterr().out
    assert "avis imprimé 1" in out and (tmp_path / "pdf" / "feuille-de-route-campagne-1.pdf").is_file()
    assert main(["reminders", "report", "--campaign", "1", "--csv", str(tmp_path / "effect.csv")]) == 0
    assert "Trop peu de levées pour conclure" in capsys.readouterr().out
    assert (tmp_path / "effect.csv").read_text().startswith("group,unit,")
    assert main(["reminders", "opt-out", "bin:BAC-0042"]) == 0
    assert main(["reminders", "opt-out", "maison-12"]) == 2
    assert "attendu address:<n° d'adresse> ou bin:<puce du bac>" in capsys.readouterr().err
    rules.write_text("household:\n  min_contaminated_lifts: 0\n")
    assert main(["reminders", "plan", "--rules", str(rules)]) == 2
    assert "household.min_contaminated_lifts" in capsys.readouterr().err
    assert main(["reminders", "report", "--campaign", "99"]) == 2


def test_report_json_matches_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``reminders report --json`` prints what the campaign page reads from the API."""
    import json

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from server.app import create_app
    from server.config import ServerSettings
    from server.db import make_engine
    from server.migrate import upgrade_database
    from server.reminders.models import upgrade_reminders
    from server.web.auth import create_token
    from trivue.sim.reminder_effect import store_trial

    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    upgrade_reminders(engine)
    with Session(engine) as session:
        _trial, campaign = store_trial(session, 5, 0.3)
        token = create_token(session, "manager", "test-manager")
        session.commit()
        campaign_id = campaign.id
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", str(engine.url))
    assert main(["reminders", "report", "--campaign", str(campaign_id), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    app = create_app(ServerSettings(data_dir=tmp_path, database_url=str(engine.url), cookie_secure=False), engine,
                     start_ingest=False)
    page = TestClient(app).get(f"/api/reminders/campaigns/{campaign_id}/effect",
                               headers={"Authorization": f"Bearer {token}"}).json()
    engine.dispose()
    assert printed == page and printed["status"] == "decrease"
    assert main(["reminders", "report", "--campaign", str(campaign_id)]) == 0
    text = capsys.readouterr().out
    assert "Baisse de la contamination" in text and "différence de différences" in text and "rues témoins" in text


def test_every_command_refuses_bad_input_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Exit code 2, one French line, no traceback, no INFO noise; an unknown campaign is unknown everywhere."""
    from sqlalchemy import select

    from server.audit import AuditEntry

    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    bad_file = tmp_path / "contacts.csv"
    bad_file.write_bytes(b"\xff\xfe\x00")
    cases = {
        ("items", "--campaign", "999"): "la campagne 999 n'existe pas",
        ("send", "--campaign", "999"): "la campagne 999 n'existe pas",
        ("retry", "--campaign", "999"): "la campagne 999 n'existe pas",
        ("report", "--campaign", "999"): "la campagne 999 n'existe pas",
        ("review", "999999", "--approve"): "l'élément 999999 n'existe pas",
        ("plan", "--since", "2026-11-10", "--until", "2026-11-01"): "est après --until",
        ("create", "--since", "2026-11-10", "--until", "2026-11-01"): "est après --until",
        ("create", "--until", "2020-01-01"): "aucun message",
        ("plan", "--rules", str(tmp_path / "absent.yaml")): "fichier de règles introuvable",
        ("contacts", str(bad_file)): "contacts.csv",
        ("contacts", str(tmp_path / "absent.csv")): "absent.csv",
        ("opt-out", "maison-12"): "clé de foyer",
        ("erase", "bin:INCONNU"): "aucune donnée pour le foyer bin:INCONNU",
        ("false-detections", str(tmp_path / "no" / "such" / "dir.csv")): "dir.csv",
    }
    for args, message in cases.items():
        assert main(["reminders", *args]) == 2, args
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err, (args, captured.err)
        assert len(captured.err.strip().splitlines()) == 1 and "INFO" not in captured.err, (args, captured.err)
    with city.sessions() as session:  # the unknown key left nothing behind
        assert not list(session.scalars(select(AuditEntry).where(AuditEntry.target == "bin:INCONNU")))
    assert main(["reminders", "create", "--until", TODAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "(niveau foyer)" in out
    assert main(["reminders", "items", "--campaign", "1"]) == 0
    out = capsys.readouterr().out
    assert "à relire" in out and "pending" not in out and "foyer" in out
    assert main(["-v", "reminders", "items", "--campaign", "1"]) == 0  # -v: the libraries' logs too
    assert "INFO" in capsys.readouterr().err
    assert main(["reminders", "erase", "bin:BAC-0042", "--note", "courrier du 3 décembre"]) == 0
    with city.sessions() as session:
        detail = session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "reminders.household.erase"))
    assert detail is not None and "courrier du 3 décembre" in detail


def test_the_notices_sent_print_the_servers_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``trivue reminders send`` prints the local rules of the server's ``sorting_rules`` (compostable
    bags in the biowaste, a paper bank for paper only), and stops on a rules file it cannot use."""
    with engine_for("sqlite", tmp_path, False) as engine:
        seed_city(engine, tmp_path, TODAY)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")
    monkeypatch.setenv("TRIVUE_SORTING_RULES", str(tmp_path / "absent.yaml"))
    assert main(["reminders", "false-detections", str(tmp_path / "fd.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"trivue reminders: error: sorting_rules: {tmp_path / 'absent.yaml'}: rules file not found", err
    monkeypatch.setenv("TRIVUE_SORTING_RULES", str(edited_rules(tmp_path / "regles")))
    assert main(["reminders", "create", "--until", TODAY.isoformat(), "--name", "Compost"]) == 0
    assert "campagne 1" in capsys.readouterr().out
    assert main(["reminders", "items", "--campaign", "1"]) == 0
    street = next(line.split()[0] for line in capsys.readouterr().out.splitlines() if "rue" in line.split())
    assert main(["reminders", "review", street, "--approve"]) == 0
    assert main(["reminders", "send", "--campaign", "1", "--out", str(tmp_path / "pdf")]) == 0
    (notice,) = [p for p in (tmp_path / "pdf").glob("*.pdf") if not p.name.startswith("feuille-de-route")]
    text = " ".join(pdf_text(notice.read_bytes()).split())
    assert "Biodéchets : déchets alimentaires, sac compostable." in text, text
    assert "Papiers : papier." in text, text
