"""The ambassadeurs' route sheets (``feuille-de-route-campagne-<c>.pdf``) list the addresses of the
households to visit: an erasure rewrites the sheets that named the household (or deletes one left
with nobody to visit), the retention's expiry deletes a campaign's sheet with its households' data,
and an erasure of a key for which Trivue holds only lifts says what is kept, and why. The sheet reads
as an ambassadeur walks: one side of the street then the other, each visit's figures in words, a
column for the outcome, and a street-level campaign's sheet asks for notices, not visits."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from server.ingest.evidence import EvidenceStore
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.households import UnknownHousehold, erase_household
from server.reminders.letters import route_sheet_pdf
from server.reminders.models import HOUSEHOLD, Item
from server.reminders.plan import make_plan
from server.reminders.walking_route import route_streets
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


def sheet_text(pdf: bytes) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


def visit_blocks(city: City, extra: tuple[str, ...] = ()) -> list[Any]:
    """The route sheet's blocks of the city's campaign, households at level 3, every item approved;
    the addresses labelled ``extra`` (« 4 Rue Hoche ») first get three contaminated lifts each."""
    from tests.server.reminders_city import DIRTY, sure_addresses

    rules = RemindersConfig()
    with city.sessions() as session:
        for address in [a for a in sure_addresses(session) if a.label.startswith(extra)] if extra else []:
            for n, days in enumerate((2, 7, 13)):
                city.lift(session, "extra", (address.lat, address.lon), days, DIRTY[n])
        session.commit()
        campaign = create_campaign(session, make_plan(session, rules, TODAY, households=city.settings.household_level),
                                   "Novembre", "test", rules)
        session.flush()
        items = list(session.scalars(select(Item).where(Item.campaign_id == campaign.id)))
        for item in items:
            if item.kind in (HOUSEHOLD, "street"):
                item.level = 3 if item.kind == HOUSEHOLD else item.level
                review(session, item.id, Decision(True), "test")
        return route_streets(session, items)


def test_the_ambassador_walks_one_side_then_comes_back_on_the_other(city: City) -> None:
    """3, 4, 5, 6 Rue Hoche were listed 3, 4, 5, 6 (across the street at every door): odd numbers up
    the street, even numbers back down, so that nobody crosses between two doors."""
    blocks = visit_blocks(city, extra=("4 Rue Hoche", "6 Rue Hoche"))
    (hoche,) = [b for b in blocks if b.name.startswith("Rue Hoche")]
    numbers = [s.place.split(" ")[0] for s in hoche.stops if not s.place.startswith("Toute")]
    assert numbers == ["3", "5", "6", "4"], numbers


def test_each_visit_says_its_figures_in_words_and_leaves_room_for_the_outcome(city: City) -> None:
    """« 3 / 5 » said nothing an ambassador could repeat at the door; the sheet had no column to write
    what happened (absent, spoke with the household, left the notice)."""
    blocks = visit_blocks(city)
    stops = {s.place.split(" 35000")[0]: s for b in blocks for s in b.stops}
    assert stops["3 Rue Hoche"].lifts == "3 contaminées sur 5 levées"
    assert stops["5 Rue Hoche"].lifts == "2 contaminées sur 2 levées"
    text = sheet_text(route_sheet_pdf("Novembre", "22 octobre 2026 au 20 novembre 2026", blocks))
    assert "Résultat de la visite" in text and "Levées du 22 octobre 2026 au 20 novembre 2026" in text, text


def test_a_street_level_sheet_asks_for_notices_not_for_visits(tmp_path: Path) -> None:
    """Household level off (the default): the block said « 0 adresse à visiter » and its line
    « Toute la rue (bacs sans adresse sûre) … 15 sur 15 contaminées », as if households had been sought."""
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY, household_level=False)
        blocks = visit_blocks(city)
    (hoche,) = [b for b in blocks if b.name.startswith("Rue Hoche")]
    assert hoche.summary == "Avis à distribuer dans toute la rue", hoche.summary
    (line,) = hoche.stops
    assert line.place == "Toute la rue" and "sans adresse" not in line.lifts, line
    assert line.lifts.endswith("levées") and " contaminées sur " in line.lifts, line
