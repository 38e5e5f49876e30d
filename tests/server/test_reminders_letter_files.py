"""The server's copies of household letters (``<data_dir>/reminders/campagne-<c>/``): they lose the
photos the retention purged, an erasure finds them from any directory (and says when it cannot),
no browser or proxy keeps them, and the mail room can print only the letters not yet printed."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.ingest.evidence import EvidenceStore
from server.ingest.models import Evidence
from server.reminders.config import RemindersConfig
from server.reminders.dispatch import Dispatcher
from server.reminders.households import erase_household, import_contacts
from server.reminders.mailroom.print_run import print_run
from server.reminders.models import HOUSEHOLD, Item
from server.reminders.sending import requeue
from server.retention import purge_expired
from server.web.auth import create_token
from tests.server.reminders_city import RULES, City, engine_for, seed_city, send_household_campaign
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


def send_letters(city: City, root: Path | None = None) -> int:
    """The city's campaign, household items approved and sent (by letter: no contacts on file)."""
    return send_household_campaign(city, TODAY, root=root)[0]


def images(path: Path) -> list[str]:
    """sha256 of every image the PDF draws, page by page."""
    return [sha for sha, _size in drawn(path)]


def drawn(path: Path) -> list[tuple[str, tuple[int, int]]]:
    """Every image the PDF draws, page by page: its sha256, and its width and height in pixels."""
    found = []
    for page in PdfReader(path).pages:
        for ref in (page["/Resources"].get("/XObject") or {}).values():
            image = ref.get_object()
            if image.get("/Subtype") == "/Image":
                found.append((hashlib.sha256(image._data).hexdigest(), (int(image["/Width"]), int(image["/Height"]))))
    return found


def target_letter(city: City, campaign_id: int) -> tuple[Item, Path]:
    with city.sessions() as session:
        item = session.scalars(select(Item).where(
            Item.campaign_id == campaign_id, Item.target_key == f"address:{city.addresses['target'].id}")).one()
    return item, city.settings.data_dir / "reminders" / f"campagne-{campaign_id}" / \
        f"courrier-campagne-{campaign_id}-{item.id}.pdf"


def test_a_stored_letter_loses_each_photo_when_the_retention_purges_it(city: City) -> None:
    """The letter kept a household's photos for the item's 365 days; the notice promises 30."""
    from server.reminders.letter_photos import placeholder_jpeg

    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    with city.sessions() as session:
        photos = {e.sha256: e for e in session.scalars(select(Evidence).where(Evidence.event_id.in_(item.event_ids)))}
    sizes = dict(drawn(letter))
    printed = images(letter)
    assert len(printed) == 2 and set(printed) <= set(photos), "the letter reproduces two of its lifts' photos"
    pages = len(PdfReader(letter).pages)
    store = EvidenceStore(city.settings.evidence_path, 2**22)

    def purge(days: float) -> None:
        with city.sessions() as session:
            purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=days))
            session.commit()

    purge(1)  # every photo younger than 30 days: the letter is untouched
    assert images(letter) == printed
    ages = {sha: (MIDNIGHT - e.received_at.replace(tzinfo=UTC)).days for sha, e in photos.items()}
    oldest, youngest = sorted(printed, key=lambda sha: -ages[sha])
    purge(31 - ages[oldest])  # the oldest printed photo is purged; the other is still kept
    assert not (city.settings.evidence_path / photos[oldest].path).exists()
    now = images(letter)
    assert oldest not in now and youngest in now and len(now) == 2
    # the grey box keeps the purged photo's proportions: 416 x 416 for the shared litter photos, the
    # drawn ones' otherwise (tests/server/reminders_city.py, where ../shared is absent)
    grey = {hashlib.sha256(placeholder_jpeg(*sizes[oldest])).hexdigest()}
    assert set(now) - {youngest} == grey, "the purged photo's place says it was deleted"
    purge(31)  # every photo gone: none left in the letter, the letter otherwise the same
    assert set(images(letter)) == grey and len(PdfReader(letter).pages) == pages
    before = letter.read_bytes()
    purge(32)
    assert letter.read_bytes() == before, "nothing left to remove: the file is not written again"
    run = print_run(city.sessions(), campaign_id, letter.parent)
    assert item.id in [p.item_id for p in run.letters] and not run.left_out  # the mail room still prints it
    with city.sessions() as session:
        trail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "retention.purge")).all()
    assert any("'reminder_letter_photos': 0" not in d and "'reminder_letter_photos'" in d for d in trail), trail


def test_erasure_from_another_directory_deletes_the_letter(city: City, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The server runs in /var/lib/trivue with the default relative data_dir; the DPO erases from home."""
    server, home = tmp_path / "srv", tmp_path / "home"
    server.mkdir()
    home.mkdir()
    monkeypatch.chdir(server)
    campaign_id = send_letters(city, Path("trivue-data") / "reminders")
    item, _ = target_letter(city, campaign_id)
    letter = server / "trivue-data" / "reminders" / f"campagne-{campaign_id}" / \
        f"courrier-campagne-{campaign_id}-{item.id}.pdf"
    assert letter.is_file()
    monkeypatch.chdir(home)
    monkeypatch.setenv("TRIVUE_DATA_DIR", "trivue-data")
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    assert main(["reminders", "erase", item.target_key, "--by", "dpo"]) == 0
    assert not letter.exists(), "the household's letter stayed on disk after its erasure"
    assert "1 courrier supprimé" in capsys.readouterr().out


def test_erasure_says_which_letter_it_could_not_find(city: City, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    moved = letter.with_name("ailleurs.pdf")
    letter.rename(moved)  # a letter the erasure cannot find: it must not say all is done
    with city.sessions() as session:
        done = erase_household(session, item.target_key, "dpo", letters_root=city.settings.data_dir / "reminders")
        session.rollback()
    assert done["letters"] == 0 and done["letters_missing"] == [f"courrier introuvable : {letter}"]
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    assert main(["reminders", "erase", item.target_key, "--by", "dpo"]) == 1
    err = capsys.readouterr().err
    assert f"courrier introuvable : {letter}" in err
    with city.sessions() as session:
        detail = session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "reminders.household.erase"))
    assert detail is not None and "letters_missing=1" in detail


def test_personal_data_downloads_are_never_stored_by_a_browser(city: City) -> None:
    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    engine = city.sessions.kw["bind"]
    with city.sessions() as session:
        token = create_token(session, "admin", "test-admin")
        session.commit()
    api = TestClient(create_app(city.settings, engine, start_ingest=False))
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/reminders/campaigns/{campaign_id}"
    urls = [f"{base}/files/{letter.name}", f"{base}/letters.pdf", f"{base}/letters", f"{base}/route-sheet.pdf",
            f"/api/reminders/items/{item.id}/preview", f"{base}", "/api/reminders/households",
            f"/api/reminders/households/{item.target_key}/access?format=text",
            f"/api/lifts/{item.event_ids[0]}/evidence.jpg"]
    for url in urls:
        answer = api.get(url, headers=headers)
        assert answer.status_code == 200, (url, answer.text)
        assert "no-store" in answer.headers.get("cache-control", ""), url


def test_the_mail_room_prints_only_the_letters_not_yet_printed(city: City, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    campaign_id = send_letters(city)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    first, again = tmp_path / "lot-1.pdf", tmp_path / "lot-2.pdf"
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(first), "--by", "courrier"]) == 0
    assert "2 courriers" in capsys.readouterr().out
    with city.sessions() as session:
        printed = session.scalars(select(Item).where(Item.printed_at.is_not(None))).all()
        assert len(printed) == 2 and {i.printed_by for i in printed} == {"cli:courrier"}
        assert session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "reminders.letters.printed"))
    # nothing new: the new-only run says so and writes nothing
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(again), "--new-only"]) == 2
    assert "(2 déjà imprimés)" in capsys.readouterr().err and not again.exists()
    # the bin's household had no address: it gets one, its letter goes out, and only it is printed
    with city.sessions() as session:
        import_contacts(session, "key;postal_address\nbin:BAC-0042;\"3 rue Hoche, 35000 Rennes\"\n", "test", "c.csv")
        requeue(session, campaign_id, "test")
        session.commit()
        Dispatcher(session, RemindersConfig(), city.settings.evidence_path,
                   city.settings.data_dir / "reminders" / f"campagne-{campaign_id}", "test", TODAY,
                   sorting_rules=RULES).send_campaign(campaign_id)
        session.commit()
        new = session.scalars(select(Item).where(Item.target_key == "bin:BAC-0042")).one()
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(again), "--new-only",
                 "--json"]) == 0
    count = json.loads(capsys.readouterr().out)
    assert (count["letters"], count["already_printed"], count["only_new"]) == (1, 2, True)
    assert len(PdfReader(again).pages) == count["sheets"] * 2
    with city.sessions() as session:
        token = create_token(session, "manager", "test-manager")
        session.commit()
        assert session.get(Item, new.id).printed_at is not None
    api = TestClient(create_app(city.settings, city.sessions.kw["bind"], start_ingest=False))
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/reminders/campaigns/{campaign_id}/letters"
    assert api.get(url, headers=headers).json()["already_printed"] == 3  # a reprint of all: said
    assert api.get(url + "?only_new=true", headers=headers).json()["letters"] == 0
    assert api.get(url + ".pdf?only_new=true", headers=headers).status_code == 404
    whole = api.get(url + ".pdf", headers=headers)
    assert whole.status_code == 200 and whole.headers["x-letters"] == "3"
    assert len(PdfReader(io.BytesIO(whole.content)).pages) >= 6


def test_the_purge_deletes_the_letters_erasures_left_behind_and_nothing_else(city: City, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 2026-12-05 an erasure from another directory than the server's did not find the letter
    (its path recorded relative): the item forgot the household, its letter stayed on disk for ever.
    The hourly purge deletes such letters, and never a live item's, a print file or a notice."""
    campaign_id = send_letters(city)
    item, erased = target_letter(city, campaign_id)
    folder = erased.parent
    with city.sessions() as session:
        live = session.scalars(select(Item).where(Item.campaign_id == campaign_id, Item.kind == HOUSEHOLD,
                                                  Item.channel == "letter", Item.id != item.id)).one()
        # recorded as a send did before the fix: relative to the server's directory
        session.get(Item, item.id).send_detail = f"trivue-data/reminders/{folder.name}/{erased.name}"
        monkeypatch.chdir(tmp_path)  # the DPO's directory: the relative letters folder is not there
        done = erase_household(session, item.target_key, "dpo", letters_root=Path("trivue-data") / "reminders")
        session.commit()
    assert done["letters"] == 0 and done["letters_missing"] and erased.is_file()  # as before the fix
    live_letter = folder / f"courrier-campagne-{campaign_id}-{live.id}.pdf"
    assert live_letter.is_file()
    left = folder / f".{erased.name}.photos"  # a photo rewrite of the erased letter, cut short
    left.write_bytes(erased.read_bytes())
    keep = [live_letter, *folder.glob("avis-*.pdf"), *folder.glob("feuille-de-route-*.pdf"),
            folder / f"courriers-campagne-{campaign_id}.pdf", folder / f"courriers-campagne-{campaign_id}.pdf.partiel",
            folder / "notes.pdf", folder / f"courrier-campagne-{campaign_id + 1}-{item.id}.pdf",
            folder / f"courrier-campagne-{campaign_id}-999.pdf"]  # no item, but not past the retention
    for path in keep:
        if not path.exists():
            path.write_bytes(b"%PDF-1.4 operator's file")
    link = folder / f"courrier-campagne-{campaign_id}-{item.id + 1000}.pdf"
    link.symlink_to(live_letter)  # a link is nobody's letter: neither it nor the live letter goes
    keep.append(link)
    old = [folder / f"courrier-campagne-{campaign_id}-998.pdf", city.settings.data_dir / "reminders" / "campagne-77" /
           f"courrier-campagne-77-{live.id}.pdf"]  # no item of that campaign names them, a year old
    for path in old:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"%PDF-1.4 a restored database's letter")
        year_ago = (MIDNIGHT - timedelta(days=400)).timestamp()
        os.utime(path, (year_ago, year_ago))
    with city.sessions() as session:
        report = purge_expired(session, EvidenceStore(city.settings.evidence_path, 2**22), city.settings,
                               now=MIDNIGHT + timedelta(days=1))
        session.commit()
    assert not erased.exists() and not left.exists(), "the erased household's letter is still on disk"
    assert not any(path.exists() for path in old)
    assert all(path.exists() for path in keep), [p.name for p in keep if not p.exists()]
    assert report.reminder_stray_letters == 4
    run = print_run(city.sessions(), campaign_id, folder)
    assert [letter.item_id for letter in run.letters] == [live.id]  # the mail room still prints the live one
    with city.sessions() as session:
        trail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "retention.purge")).all()
    assert any("'reminder_stray_letters': 4" in d for d in trail), trail


def logo_png(folder: Path) -> Path:
    """A small métropole logo: a PNG, so fpdf2 re-encodes it and no photo's hash can match it."""
    from PIL import Image

    path = folder / "logo-metropole.png"
    Image.new("RGB", (60, 24), (0, 90, 160)).save(path, "PNG")
    return path


def test_the_purge_replaces_the_letters_photos_and_nothing_else(city: City, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A logo or a signature added to the letter template is no photo: the purge must leave it
    (it replaced every image whose hash no kept photo had: the logo became « Photo supprimée »)."""
    from server.reminders import letters

    logo = logo_png(tmp_path)
    header = letters._header

    def with_logo(pdf: Any, head: Any) -> None:
        header(pdf, head)
        pdf.image(str(logo), x=pdf.l_margin, y=5, w=20)

    monkeypatch.setattr(letters, "_header", with_logo)
    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    with city.sessions() as session:
        photos = {e.sha256: e for e in session.scalars(select(Evidence).where(Evidence.event_id.in_(item.event_ids)))}
    printed = images(letter)
    drawn = [sha for sha in printed if sha in photos]
    logos = [sha for sha in printed if sha not in photos]
    assert len(drawn) == 2 and len(logos) == 1, "the letter holds two photos and the logo"
    ages = {sha: (MIDNIGHT - e.received_at.replace(tzinfo=UTC)).days for sha, e in photos.items()}
    oldest, youngest = sorted(drawn, key=lambda sha: -ages[sha])
    store = EvidenceStore(city.settings.evidence_path, 2**22)
    for days in (31 - ages[oldest], 31):
        with city.sessions() as session:
            purge_expired(session, store, city.settings, now=MIDNIGHT + timedelta(days=days))
            session.commit()
        now = images(letter)
        assert oldest not in now and logos[0] in now, "the logo was replaced as if it were a purged photo"
    assert youngest not in now and len(now) == 3


def test_a_letter_recorded_before_the_photo_hashes_still_loses_its_photos(city: City) -> None:
    """Letters sent before 2026-12: ``letter_photos`` lists the lifts only (their letters hold no
    other image than photos): the purge keeps replacing every image no kept photo has."""
    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    with city.sessions() as session:
        stored = session.get(Item, item.id)
        assert isinstance(stored.letter_photos, dict), "the send records each photo's hash"
        stored.letter_photos = list(stored.letter_photos)  # as migration r0004 and the sends before left it
        session.commit()
    with city.sessions() as session:
        purge_expired(session, EvidenceStore(city.settings.evidence_path, 2**22), city.settings,
                      now=MIDNIGHT + timedelta(days=31))
        session.commit()
        assert session.get(Item, item.id).letter_photos is None
    assert not set(images(letter)) & {e.sha256 for e in city.sessions().scalars(select(Evidence))}


def test_a_photo_the_letter_does_not_hold_as_is_is_still_replaced(city: City) -> None:
    """A photo fpdf2 re-encodes (not a plain JPEG) has no image of its hash in the letter: the send
    records the lifts only, and the purge replaces every image no kept photo has, as before."""
    from PIL import Image

    with city.sessions() as session:
        for evidence in session.scalars(select(Evidence)):  # a PNG where a JPEG was expected
            path = city.settings.evidence_path / evidence.path
            Image.open(path).convert("RGB").save(path, "PNG")
    campaign_id = send_letters(city)
    item, letter = target_letter(city, campaign_id)
    with city.sessions() as session:
        assert isinstance(session.get(Item, item.id).letter_photos, list)
    before = images(letter)
    with city.sessions() as session:
        purge_expired(session, EvidenceStore(city.settings.evidence_path, 2**22), city.settings,
                      now=MIDNIGHT + timedelta(days=31))
        session.commit()
    assert not set(images(letter)) & set(before), "a re-encoded photo outlived its retention in the letter"
