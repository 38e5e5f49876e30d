"""``trivue reminders ... --rules FILE`` refuses rules that would silently do nothing: a stream name
no lift carries, a templates folder that is not there (the default letters would go out instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.reminders.config import ReminderConfigError, load_targeting
from trivue.cli import main


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    return tmp_path


@pytest.mark.parametrize(("rules", "message"), [
    ("household:\n  streams: [plastic, glass]\n",
     "household.streams: Value error, flux inconnu 'plastic' (connus : recyclables, glass"),
    ("templates_dir: /nope/templates\n", "rules.templates_dir: dossier introuvable (/nope/templates)"),
    ("templates_dir: missing\n", "rules.templates_dir: dossier introuvable ("),
    # a typo in an address showed only when the first reminder bounced
    ("contact:\n  email: dechets.orleans-metropole.fr\n",
     "contact.email: Value error, 'dechets.orleans-metropole.fr' n'est pas une adresse e-mail"),
    ("channels:\n  smtp: {host: smtp.example.fr, sender: notanemail}\n",
     "channels.smtp.sender: Value error, 'notanemail' n'est pas une adresse e-mail"),
    # one mailbox, all of it: letters printed, and headers carried, the whole text
    ("contact:\n  email: 'dechets@orleans.fr;accueil@orleans.fr'\n",
     "contact.email: Value error, 'dechets@orleans.fr;accueil@orleans.fr' n'est pas une adresse e-mail"),
    ("channels:\n  smtp: {host: smtp.example.fr, sender: 'Déchets <d@orleans.fr>, x@evil.fr'}\n",
     "channels.smtp.sender: Value error, 'Déchets <d@orleans.fr>, x@evil.fr' n'est pas une adresse e-mail"),
    ("contact:\n  email: 'dechets@[10.0.0.1]'\n",
     "contact.email: Value error, 'dechets@[10.0.0.1]' n'est pas une adresse e-mail utilisable"),
])
def test_rules_that_would_do_nothing_are_refused(env: Path, capsys: pytest.CaptureFixture[str],
                                                 rules: str, message: str) -> None:
    path = env / "rules.yaml"
    path.write_text(rules)
    assert main(["reminders", "plan", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "rules.yaml" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_known_streams_and_an_existing_folder_are_kept(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    path = tmp_path / "rules.yaml"
    path.write_text("household:\n  streams: [recyclables, paper]\ntemplates_dir: mine\n"
                    "contact: {email: dechets@orleans-metropole.fr, opt_out_email: ''}\n"
                    "channels:\n  smtp: {host: smtp.example.fr, sender: 'Tri <tri@orleans-metropole.fr>'}\n")
    config = load_targeting(path)
    assert config.household.streams == ["recyclables", "paper"]
    assert config.templates_dir == (tmp_path / "mine").resolve()
    (tmp_path / "mine").rmdir()
    with pytest.raises(ReminderConfigError, match="dossier introuvable"):
        load_targeting(path)


@pytest.mark.parametrize(("rules", "field"), [
    ('contact:\n  organisation: "Service déchets\\nBcc: tous@example.fr"\n', "contact.organisation"),
    ('contact:\n  postal_address: ["5 place du 6 juin 1944\\r", "45000 ORLEANS"]\n', "contact.postal_address"),
    ('contact:\n  signature: |\n    Le service\n    des déchets\n', "contact.signature"),
    ('channels:\n  smtp: {host: smtp.example.fr, sender: "Déchets\\n <tri@example.fr>"}\n', "channels.smtp.sender"),
])
def test_a_line_break_in_the_contact_settings_stops_start_up(env: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             rules: str, field: str) -> None:
    """A CR or LF in a value that reaches a mail header (the subject carries ``contact.organisation``)
    was accepted, and each send then failed with a 500 leaving its item in ``sending``."""
    from server.app import create_app
    from server.config import ConfigError, load_settings

    path = env / "rules.yaml"
    path.write_text(rules)
    assert main(["reminders", "plan", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{field}: Value error, une seule ligne attendue" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    monkeypatch.setenv("TRIVUE_REMINDERS_RULES", str(path))
    with pytest.raises(ConfigError) as refused:  # the server does not start with it either
        create_app(load_settings(), start_ingest=False)
    assert field in str(refused.value) and "\n" not in str(refused.value)


def test_household_streams_the_servers_sorting_rules_lack_are_refused(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A collectivité without a paper round (its sorting rules have no paper stream) targeting
    households on paper: no lift would ever be judged for it, and nothing said so."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import ConfigError, load_settings
    from tests.server.edited_rules import edited_rules

    sorting = edited_rules(env / "regles", drop_streams=("paper",))
    monkeypatch.setenv("TRIVUE_SORTING_RULES", str(sorting))
    targeting = env / "rules.yaml"
    targeting.write_text("household:\n  streams: [recyclables, paper]\n")
    assert main(["reminders", "plan", "--rules", str(targeting)]) == 2
    err = capsys.readouterr().err
    assert "rules.household.streams : 'paper' absent des consignes de tri du serveur" in err, err
    monkeypatch.setenv("TRIVUE_REMINDERS_RULES", str(targeting))
    with pytest.raises(ConfigError, match="'paper' absent des consignes de tri"):
        create_app(load_settings(ingest_enabled=False))
    targeting.write_text("household:\n  streams: [recyclables]\n")  # collected: accepted
    with TestClient(create_app(load_settings(ingest_enabled=False))) as client:
        assert client.get("/api/health").status_code == 200
