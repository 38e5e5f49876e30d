"""Contacts files as French offices produce them: semicolons or commas, UTF-8 with or without BOM
or Windows-1252, every bad line reported with its number (an unclosed quote swallows nothing),
unknown columns listed, counts of added, updated and refused; the same through the CLI and the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from server.reminders.households import HouseholdError, import_contacts
from server.reminders.models import Contact
from tests.server.reminders_city import City

EXCEL = ("Clé;Nom;Courriel;Téléphone;Adresse;Remarque\n"
         "bin:BAC-0001;Mme Hélène Leféèvre;helene@example.fr;06 98 76 54 32;12 rue de Bourgogne, 45000 Orléans;RAS\n"
         'bin:BAC-0002;"M. Noël ""Jo"" Gâté;;;\n'  # unclosed quote: this line is refused, the next one stays
         "bin:BAC-0003;Mme Çava;;0238792222;3 place du Martroi, 45000 Orléans;\n"
         "maison-4;X;;;;\n"
         "bin:BAC-0005;Y;pas-un-courriel;;;\n")


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8-sig"])
def test_french_excel_file(city: City, encoding: str) -> None:
    with city.sessions() as session:
        report = import_contacts(session, EXCEL.encode(encoding), "test", "contacts.csv")
        session.commit()
        stored = {c.key: c for c in session.scalars(select(Contact))}
    assert (report.imported, report.updated, len(report.errors)) == (2, 0, 3), report.errors
    assert report.delimiter == ";" and report.unknown_columns == ("Remarque",)
    # Said in the names a manager knows (Excel's "CSV (séparateur : point-virgule)" is Windows-1252).
    assert report.encoding == {"cp1252": "Windows-1252", "utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)"}[encoding]
    assert f"(fichier {report.encoding}, séparateur « ; »)" in report.summary()
    assert [e.split(" : ")[0] for e in report.errors] == ["ligne 3", "ligne 5", "ligne 6"]
    assert "guillemet" in report.errors[0] and "courriel 'pas-un-courriel' invalide" in report.errors[2]
    assert stored["bin:BAC-0001"].name == "Mme Hélène Leféèvre" and stored["bin:BAC-0001"].phone == "+33698765432"
    assert stored["bin:BAC-0003"].name == "Mme Çava"  # the line after the unclosed quote is intact
    assert stored["bin:BAC-0001"].postal_address == "12 rue de Bourgogne, 45000 Orléans"


def test_comma_file_updates_and_counts(city: City) -> None:
    with city.sessions() as session:
        import_contacts(session, b"key,name\nbin:BAC-0001,A\n", "test", "a.csv")
        report = import_contacts(session, b'key,name,email\nbin:BAC-0001,B,b@example.fr\nbin:BAC-0009,"C, D",\n',
                                 "test", "b.csv")
        contact = session.get(Contact, "bin:BAC-0001")
        assert contact is not None and contact.name == "B"
    assert (report.imported, report.updated, report.errors, report.delimiter) == (1, 1, (), ",")
    assert report.summary().startswith("1 contact ajouté, 1 mis à jour, 0 ligne refusée")


def test_unreadable_files(city: City) -> None:
    with city.sessions() as session:
        with pytest.raises(HouseholdError, match="colonne « key »"):
            import_contacts(session, b"nom;courriel\nX;x@example.fr\n", "test", "c.csv")
        with pytest.raises(HouseholdError, match="fichier vide"):
            import_contacts(session, b"\n\n", "test", "c.csv")


def household_level_commands(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    """``trivue`` commands run in this process on the city's database, household level on."""
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")


def test_cli_and_api_apply_the_same_rules(city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.web.auth import create_token
    from trivue.cli import main

    household_level_commands(city, monkeypatch)
    path = tmp_path / "contacts.csv"
    path.write_bytes(EXCEL.encode("cp1252"))
    assert main(["reminders", "contacts", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 contacts ajoutés, 0 mis à jour, 3 lignes refusées" in out and "Remarque" in out
    assert "ligne 3 : guillemet" in out and "fichier Windows-1252, séparateur « ; »" in out
    from server.db import make_engine

    engine = make_engine(city.settings.db_url)
    app = create_app(city.settings, engine, start_ingest=False)
    with city.sessions() as session:
        token = create_token(session, "manager", "test-manager")
        session.commit()
    answer = TestClient(app).post("/api/reminders/households/import", content=EXCEL.encode("cp1252"),
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}).json()
    engine.dispose()
    assert (answer["imported"], answer["updated"], answer["refused"]) == (0, 2, 3)
    assert answer["unknown_columns"] == ["Remarque"] and answer["errors"][0].startswith("ligne 3 :")
    path.write_bytes(b"\xff\xfe\x00")  # not a CSV in any encoding
    assert main(["reminders", "contacts", str(path)]) == 2
    assert main(["reminders", "contacts", str(tmp_path / "absent.csv")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_fails_when_every_line_is_refused(city: City, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing imported and lines refused: exit 2 with the refused lines still listed; a partial
    import keeps exit 0 and lists its refusals."""
    from trivue.cli import main

    household_level_commands(city, monkeypatch)
    path = tmp_path / "contacts.csv"
    path.write_text("key;email\nmaison-4;x@example.fr\nbin:BAC-0009;pas-un-courriel\n", encoding="utf-8")
    assert main(["reminders", "contacts", str(path)]) == 2
    captured = capsys.readouterr()
    assert "0 contact ajouté, 0 mis à jour, 2 lignes refusées" in captured.out
    assert "ligne 2 : clé 'maison-4'" in captured.out and "ligne 3 : courriel 'pas-un-courriel'" in captured.out
    assert "contacts.csv : aucun contact importé, 2 lignes refusées" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    with city.sessions() as session:
        assert session.scalar(select(Contact).where(Contact.key == "bin:BAC-0009")) is None
    path.write_text("key;email\nbin:BAC-0009;x@example.fr\nmaison-4;y@example.fr\n", encoding="utf-8")
    assert main(["reminders", "contacts", str(path)]) == 0
    captured = capsys.readouterr()
    assert "1 contact ajouté, 0 mis à jour, 1 ligne refusée" in captured.out
    assert "ligne 3 : clé 'maison-4'" in captured.out and captured.err == ""
