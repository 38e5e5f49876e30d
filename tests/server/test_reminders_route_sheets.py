"""The ambassadeurs' route sheets (``feuille-de-route-campagne-<c>.pdf``) list the addresses of the
households to visit: an erasure rewrites the sheets that named the household (or deletes one left
with nobody to visit), the retention's expiry deletes a campaign's sheet with its households' data,
and an erasure of a key for which Trivue holds only lifts says what is kept, and why."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from server.ingest.evidence import EvidenceStore
from server.reminders.households import UnknownHousehold, erase_household
from server.reminders.models import HOUSEHOLD, Item
from server.reminders.wording import translate
from server.retention import purge_expired
from tests.server.reminders_city import City, engine_for, seed_city, send_household_campaign
from trivue.cli import main

TODAY = date(2026, 11, 20)
MIDNIGHT = datetime.combine(TODAY, datetime.min.time(), UTC)


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


@pytest.fixture
def city(tmp_path: Path) -> Any:
    with engine_for("sqlite", tmp_path, False) as engine:
        yield seed_city(engine, tmp_path, TODAY)


def send_visits(city: City, folder: Path | None = None) -> tuple[int, Path]:
    """The city's campaign with its households at level 3 (a visit): sent, its route sheet written."""
    campaign_id, folder = send_household_campaign(city, TODAY, folder=folder, level=3)
    return campaign_id, folder / f"feuille-de-route-campagne-{campaign_id}.pdf"


def stops(sheet: Path) -> list[str]:
    """The addresses the sheet lists, one a line (a stop's line starts with its check box)."""
    text = "\n".join(page.extract_text() for page in PdfReader(sheet).pages)
    return [line.removeprefix("☐ ").split(" 35000")[0] for line in text.splitlines() if line.startswith("☐ ")]


def test_an_erasure_rewrites_the_route_sheet_without_the_household(city: City) -> None:
    _, sheet = send_visits(city)
    target, other = city.addresses["target"], city.addresses["opted_out"]
    assert stops(sheet) == ["3 Rue Hoche", "5 Rue Hoche"] == [target.label.split(" 35000")[0],
                                                             other.label.split(" 35000")[0]]
    root = city.settings.data_dir / "reminders"
    with city.sessions() as session:
        done = erase_household(session, f"address:{target.id}", "dpo", letters_root=root)
        session.commit()
    assert stops(sheet) == ["5 Rue Hoche"], "the erased household is still on the ambassadeurs' sheet"
    assert done["route_sheets"] == 1 and done["route_sheets_missing"] == []
    with city.sessions() as session:  # the last household to visit gone: no empty sheet is left behind
        done = erase_household(session, f"address:{other.id}", "dpo", letters_root=root)
        session.commit()
    assert not sheet.exists() and done["route_sheets"] == 1


def test_an_erasure_from_another_directory_finds_the_route_sheet(city: City, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The server runs in /srv with the default relative data_dir; the DPO erases from home."""
    server, home = tmp_path / "srv", tmp_path / "home"
    server.mkdir()
    home.mkdir()
    monkeypatch.chdir(server)
    campaign_id, _ = send_visits(city, Path("trivue-data") / "reminders" / "campagne-1")
    sheet = server / "trivue-data" / "reminders" / f"campagne-{campaign_id}" / \
        f"feuille-de-route-campagne-{campaign_id}.pdf"
    assert len(stops(sheet)) == 2
    monkeypatch.chdir(home)
    monkeypatch.setenv("TRIVUE_DATA_DIR", "trivue-data")
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    assert main(["reminders", "erase", f"address:{city.addresses['target'].id}", "--by", "dpo"]) == 0
    assert stops(sheet) == ["5 Rue Hoche"]
    assert "1 feuille de route réécrite ou supprimée" in capsys.readouterr().out


def test_an_erasure_says_which_route_sheet_it_could_not_rewrite(city: City, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``trivue reminders send --out DIR`` wrote the sheet outside the server's folder: the operator's."""
    _, sheet = send_visits(city, tmp_path / "tournee")
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    assert main(["reminders", "erase", f"address:{city.addresses['target'].id}", "--by", "dpo"]) == 1
    assert f"feuille de route hors du dossier du serveur, non réécrite : {sheet}" in capsys.readouterr().err
    assert len(stops(sheet)) == 2  # the operator's copy: said, not touched


def test_the_expiry_deletes_the_route_sheet_with_its_households(city: City) -> None:
    campaign_id, sheet = send_visits(city)
    store = EvidenceStore(city.settings.evidence_path, 2**22)
    folder = sheet.parent
    stale = city.settings.data_dir / "reminders" / "campagne-77" / "feuille-de-route-campagne-77.pdf"
    stale.parent.mkdir()
    stale.write_bytes(b"%PDF-1.4 a restored database's sheet")  # no such campaign; young: kept a while
    other = folder / "feuille-de-route-ailleurs.pdf"
    other.write_bytes(b"%PDF-1.4 operator's file")
    with city.sessions() as session:
        report = purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=30))
        session.commit()
    assert sheet.is_file() and report.reminder_route_sheets == 0  # the campaign is live
    with city.sessions() as session:
        report = purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=500))
        session.commit()
        assert session.scalars(select(Item.target_key).where(Item.campaign_id == campaign_id,
                                                             Item.kind == HOUSEHOLD)).all()[0].startswith("expired:")
    assert not sheet.exists(), "the campaign's households expired, their addresses stayed on the route sheet"
    assert not stale.exists() and other.exists()
    assert report.reminder_route_sheets == 2


def test_a_sheet_left_by_an_earlier_expiry_is_deleted_by_the_next_purge(city: City) -> None:
    """A campaign pseudonymised before route sheets were purged: its sheet still names households."""
    _, sheet = send_visits(city)
    kept = sheet.read_bytes()
    store = EvidenceStore(city.settings.evidence_path, 2**22)
    with city.sessions() as session:
        purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=500))
        session.commit()
    sheet.write_bytes(kept)
    with city.sessions() as session:
        report = purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=501))
        session.commit()
    assert not sheet.exists() and report.reminder_route_sheets == 1


def test_erasing_a_key_with_only_lifts_says_they_are_kept_and_why(city: City, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """« aucune donnée … rien n'a été effacé » was untrue: Trivue holds the household's lifts, on purpose."""
    key = f"address:{city.addresses['clean'].id}"
    with city.sessions() as session, pytest.raises(UnknownHousehold) as refused:
        erase_household(session, key, "dpo")
    said = str(refused.value)
    assert "aucune donnée" not in said
    assert "ses 24 levées sont gardées" in said and "conservation" in said and "intérêt public" in said, said
    english = translate(said, "en")
    assert "its 24 lifts are kept" in english and "public interest" in english, english
    with city.sessions() as session, pytest.raises(UnknownHousehold) as nothing:
        erase_household(session, "address:999999", "dpo")  # a typo: nothing at all, said as before
    assert "aucune donnée pour le foyer address:999999" in str(nothing.value)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_LANG", "en")
    assert main(["reminders", "erase", key, "--by", "dpo"]) == 2
    err = capsys.readouterr().err
    assert "24 lifts are kept" in err and "public interest" in err and "no data" not in err, err
