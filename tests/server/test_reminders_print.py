"""The mail room's print run: a campaign's letters as one PDF in delivery order (commune, postcode,
street, number), with its count, from the API, the CLI and the page's link; streamed with bounded
memory; refused while the household level is off, as each letter is; audited like any download.
And every reminders route that answers 409 for the household level lists it in the OpenAPI document."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.reminders.campaigns import Decision, create_campaign, review
from server.reminders.config import RemindersConfig
from server.reminders.dispatch import Dispatcher
from server.reminders.households import erase_household, import_contacts, opt_out
from server.reminders.mailroom.print_file import PdfJoiner, joined_pdf
from server.reminders.mailroom.print_run import print_run
from server.reminders.models import HOUSEHOLD, Item
from server.reminders.plan import make_plan
from server.reminders.postal import sorting_key
from server.streets.models import Address
from server.web.auth import create_token
from tests.server.reminders_city import RULES, City, engine_for, seed_city
from tests.server.test_openapi_refusals import _undocumented
from trivue.cli import main

TODAY = date(2026, 11, 20)
# Where the extra households live (contacts' postal addresses), and where their letters must come in the file.
HOMES = {
    "bourgogne-10": "Mme Dix, 10, rue de Bourgogne, 45000 Orléans",
    "bourgogne-9": "M. Neuf, 9 rue de Bourgogne, 45000 Orléans",
    "bourgogne-9bis": "Mme Bis, 9 bis rue de Bourgogne, 45000 Orléans",
    "braye": "M. Braye, 2 rue de la Mairie, 45800 Saint-Jean-de-Braye",
    "paris": "Mme Paris, 1 avenue de Paris, 45000 Orléans",
    "arc": "M. Arc, 4 rue Jeanne-d'Arc, 45100 Orléans",
}
ORDER = ["paris", "bourgogne-9", "bourgogne-9bis", "bourgogne-10", "arc", "braye"]  # Rennes (the city's) between


@pytest.fixture(autouse=True)
def _french_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' French messages (the record's words) are what this file checks; English is the CLI's
    default (README "Commands"), checked in both languages by test_reminders_i18n.py."""
    monkeypatch.setenv("TRIVUE_LANG", "fr")


def mail_room_campaign(city: City) -> tuple[int, dict[str, int]]:
    """The city's campaign plus six households of HOMES, every household item approved and sent by letter."""
    rules = RemindersConfig()
    with city.sessions() as session:
        campaign = create_campaign(session, make_plan(session, rules, TODAY), "Novembre", "test", rules)
        session.flush()
        taken = {a.id for a in city.addresses.values()}
        spare = [a for a in session.scalars(select(Address).order_by(Address.id)) if a.id not in taken][:len(HOMES)]
        homes = {}
        for (role, postal), address in zip(HOMES.items(), spare, strict=True):
            name, _, where = postal.partition(", ")
            item = Item(campaign_id=campaign.id, kind=HOUSEHOLD, level=1, target_key=f"address:{address.id}",
                        street_id=address.street_id, address_id=address.id, lifts=3, contaminated=2,
                        categories={"verre": 2}, event_ids=[], reason="2 levées contaminées sur 3")
            session.add(item)
            session.flush()
            homes[role] = item.id
            csv = f'key;name;postal_address\naddress:{address.id};{name};"{where}"\n'
            assert import_contacts(session, csv, "test", "contacts.csv").imported == 1
        for item in session.scalars(select(Item).where(Item.campaign_id == campaign.id, Item.kind == HOUSEHOLD)):
            review(session, item.id, Decision(True), "test")
        session.commit()
        Dispatcher(session, rules, city.settings.evidence_path, folder(city, campaign.id), "test", TODAY,
                   sorting_rules=RULES).send_campaign(campaign.id)
        session.commit()
        return campaign.id, homes


def folder(city: City, campaign_id: int) -> Path:
    return city.settings.data_dir / "reminders" / f"campagne-{campaign_id}"


def first_lines(pdf: bytes) -> list[str]:
    """Each page's addressee (its window's first line), "" for a blank page."""
    lines = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        text = page.extract_text() or ""
        lines.append(next((line for line in text.splitlines() if line.startswith(("M", "Aux"))), "") if text else "")
    return lines


def test_sorting_key_is_the_mail_rooms_order() -> None:
    keys = [sorting_key(a) for a in ("10 rue X, 45000 Orléans", "9 rue X, 45000 Orléans", "9 bis rue X 45000 Orléans",
                                     "9 A rue X 45000 Orléans")]
    assert sorted(keys) == [keys[1], keys[2], keys[3], keys[0]]  # 9, 9 bis, 9 A, 10: numbers as numbers
    assert sorting_key("1 rue Y, 45800 Saint-Jean-de-Braye").commune == sorting_key("3 rue Z 45800 ST JEAN DE BRAYE")\
        .commune.replace("ST ", "SAINT ")
    long = "118 allée du Maréchal de Lattre de Tassigny, 45160 Saint-Hilaire-Saint-Mesmin"
    assert sorting_key(long).street == sorting_key("2 " + long[4:]).street  # never abbreviated for one number only


def test_one_print_file_in_delivery_order(city: City) -> None:
    campaign_id, homes = mail_room_campaign(city)
    run = print_run(city.sessions(), campaign_id, folder(city, campaign_id))
    order = [letter.item_id for letter in run.letters]
    mine = [i for i in order if i in homes.values()]
    assert mine == [homes[role] for role in ORDER]
    rennes = [letter for letter in run.letters if letter.place.commune == "RENNES"]
    assert len(rennes) == 2 and order.index(rennes[0].item_id) == 5  # after Orléans, before Saint-Jean-de-Braye
    assert run.communes() == [{"postcode": "45000", "commune": "ORLEANS", "letters": 4, "first": 1},
                              {"postcode": "45100", "commune": "ORLEANS", "letters": 1, "first": 5},
                              {"postcode": "35000", "commune": "RENNES", "letters": 2, "first": 6},
                              {"postcode": "45800", "commune": "SAINT JEAN DE BRAYE", "letters": 1, "first": 8}]
    pdf = b"".join(run.pdf())
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == run.pages + run.blank_pages == run.sheets * 2
    # each letter starts on a front (odd page), its own pages follow, then a blank back if it had an odd count
    starts = [1]
    for letter in run.letters:
        starts.append(starts[-1] + letter.pages + letter.pages % 2)
    lines, names = first_lines(pdf), {item_id: HOMES[role].split(", ")[0] for role, item_id in homes.items()}
    assert [lines[start - 1] for start, letter in zip(starts, run.letters, strict=False) if letter.item_id in names] \
        == ["Mme Paris", "M. Neuf", "Mme Bis", "Mme Dix", "M. Arc", "M. Braye"]
    for start, end, letter in zip(starts, starts[1:], run.letters, strict=False):
        assert end - start == letter.pages + letter.pages % 2 and (not letter.pages % 2 or lines[end - 2] == "")
    one_side = print_run(city.sessions(), campaign_id, folder(city, campaign_id), recto_verso=False)
    assert one_side.blank_pages == 0 and one_side.sheets == run.pages
    assert len(PdfReader(io.BytesIO(b"".join(one_side.pdf()))).pages) == run.pages


def test_opted_out_erased_and_missing_letters_are_left_out_and_said(city: City) -> None:
    """A household that opted out after its letter was written must not get it in the post; an erased
    one neither (its file is gone); a file deleted by hand is said, not a crash."""
    campaign_id, homes = mail_room_campaign(city)
    with city.sessions() as session:
        keys = {role: session.get(Item, item_id).target_key for role, item_id in homes.items()}
        opt_out(session, keys["paris"], "test", "courrier du 21/11")
        erase_household(session, keys["arc"], "test", letters_root=city.settings.data_dir / "reminders")
        session.commit()
    (folder(city, campaign_id) / f"courrier-campagne-{campaign_id}-{homes['braye']}.pdf").unlink()
    run = print_run(city.sessions(), campaign_id, folder(city, campaign_id))
    assert {homes["paris"], homes["arc"], homes["braye"]}.isdisjoint(letter.item_id for letter in run.letters)
    assert sorted(run.left_out) == sorted([f"élément {homes['paris']} : opposition du foyer",
                                           f"élément {homes['arc']} : données du foyer effacées",
                                           f"élément {homes['braye']} : fichier du courrier introuvable"])
    assert len(run.letters) == 5


def test_joining_keeps_one_letter_in_memory(city: City) -> None:
    """5,000 letters are a gigabyte: the joiner's memory must not grow with the number of letters."""
    campaign_id, homes = mail_room_campaign(city)
    one = folder(city, campaign_id) / f"courrier-campagne-{campaign_id}-{homes['paris']}.pdf"
    written = 0

    def peak(copies: int) -> int:
        nonlocal written
        tracemalloc.start()
        try:
            for chunk in joined_pdf([one] * copies, PdfJoiner("t")):
                written += len(chunk)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(5), peak(60)
    # 55 more letters held would add 55 letters' bytes; the bound leaves room for what other threads
    # of the test process allocate meanwhile (tracemalloc sees them all: 2x the 5 letters' peak flaked)
    size = one.stat().st_size
    assert large - small < size * 10 and large < size * 20, (small, large, size)
    assert written > one.stat().st_size * 60


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[City, Any, dict[str, dict[str, str]]]]:
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        with city.sessions() as session:
            tokens = {role: create_token(session, role, f"test-{role}") for role in ("viewer", "manager")}
            session.commit()

        def client(**settings: Any) -> TestClient:
            return TestClient(create_app(city.settings.model_copy(update=settings), engine, start_ingest=False))

        yield city, client, {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}


def test_the_print_file_from_the_api(served) -> None:  # type: ignore[no-untyped-def]
    city, client, headers = served
    campaign_id, _homes = mail_room_campaign(city)
    api, manager = client(), headers["manager"]
    base = f"/api/reminders/campaigns/{campaign_id}/letters"
    assert api.get(base, headers=headers["viewer"]).status_code == 403
    assert api.get(base + ".pdf", headers=headers["viewer"]).status_code == 403
    count = api.get(base, headers=manager).json()
    assert (count["letters"], count["order"], count["left_out"]) == (8, "commune, code postal, rue, numéro", [])
    assert [c["letters"] for c in count["communes"]] == [4, 1, 2, 1]
    pdf = api.get(base + ".pdf", headers=manager)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="courriers-campagne-{campaign_id}.pdf"'
    assert pdf.headers["x-letters"] == "8" and len(PdfReader(io.BytesIO(pdf.content)).pages) == count["sheets"] * 2
    assert first_lines(pdf.content)[0] == "Mme Paris"
    with city.sessions() as session:
        trail = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "reminders.file.export")).all()
    assert trail == [f"courriers-campagne-{campaign_id}.pdf: 8 letters, {count['pages']} pages"]
    assert api.get("/api/reminders/campaigns/999/letters.pdf", headers=manager).status_code == 404
    api.cookies.set("trivue_lang", "en")
    english = api.get(base, headers=manager).json()
    api.cookies.clear()
    assert english["order"] == "commune, postcode, street, number"
    off = client(household_level=False)
    for path in (base, base + ".pdf"):
        refused = off.get(path, headers=manager)
        assert refused.status_code == 409 and "Les courriers nomment des foyers" in refused.json()["detail"]
    page = api.get("/rappels", headers=manager)
    assert 'id="print-letters"' in page.text
    assert 'id="print-letters"' not in off.get("/rappels", headers=manager).text


def test_every_household_refusal_is_in_the_openapi_document(served) -> None:  # type: ignore[no-untyped-def]
    """Household level off: review, preview, send, retry, a letter's file and the print run answer 409,
    and their operations must say so (only the contacts' did)."""
    city, client, headers = served
    campaign_id, homes = mail_room_campaign(city)
    with city.sessions() as session:  # a household item still waiting for its review, one approved to send
        pending = next(i for i in session.scalars(select(Item).where(Item.kind == HOUSEHOLD)))
        pending.status = "pending"
        waiting = session.get(Item, homes["paris"])
        waiting.status = "approved"
        session.commit()
    off, manager = client(household_level=False), {**headers["manager"], "Origin": "http://testserver"}
    document = off.get("/openapi.json").json()
    letter = f"courrier-campagne-{campaign_id}-{homes['arc']}.pdf"
    calls = [("/api/reminders/items/{item_id}/review", "POST", f"/api/reminders/items/{pending.id}/review",
              {"json": {"decision": "approve"}}),
             ("/api/reminders/items/{item_id}/preview", "GET", f"/api/reminders/items/{pending.id}/preview", {}),
             ("/api/reminders/campaigns/{campaign_id}/send", "POST", f"/api/reminders/campaigns/{campaign_id}/send",
              {}),
             ("/api/reminders/campaigns/{campaign_id}/retry", "POST", f"/api/reminders/campaigns/{campaign_id}/retry",
              {}),
             ("/api/reminders/campaigns/{campaign_id}/files/{name}", "GET",
              f"/api/reminders/campaigns/{campaign_id}/files/{letter}", {}),
             ("/api/reminders/campaigns/{campaign_id}/letters", "GET",
              f"/api/reminders/campaigns/{campaign_id}/letters", {}),
             ("/api/reminders/campaigns/{campaign_id}/letters.pdf", "GET",
              f"/api/reminders/campaigns/{campaign_id}/letters.pdf", {})]
    broken = []
    for template, method, url, kwargs in calls:
        response = off.request(method, url, headers=manager, **kwargs)
        assert response.status_code == 409, (url, response.status_code, response.text)
        if why := _undocumented(document, template, method, response):
            broken.append(why)
    assert broken == [], "\n".join(broken)


def test_the_print_file_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, TODAY)
        campaign_id, _homes = mail_room_campaign(city)
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", city.settings.db_url)
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "true")
    out = tmp_path / "courriers.pdf"
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(out), "--by", "courrier"]) == 0
    printed = capsys.readouterr().out
    assert f"{out} : 8 courriers" in printed and "feuilles recto verso" in printed
    assert "45000 ORLEANS : 4 courriers, à partir du n° 1" in printed
    assert "45800 SAINT JEAN DE BRAYE : 1 courrier, à partir du n° 8" in printed
    assert first_lines(out.read_bytes())[0] == "Mme Paris" and not list(tmp_path.glob("*.partiel"))
    with city.sessions() as session:
        assert session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "reminders.file.export")) \
            == "cli:courrier"
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(tmp_path / "no" / "x.pdf")]) == 2
    assert "fichier ou dossier introuvable" in capsys.readouterr().err and not list(tmp_path.glob("**/*.partiel"))
    assert main(["reminders", "print", "--campaign", "999", "--out", str(out)]) == 2
    assert "la campagne 999 n'existe pas" in capsys.readouterr().err
    monkeypatch.setenv("TRIVUE_HOUSEHOLD_LEVEL", "false")
    assert main(["reminders", "print", "--campaign", str(campaign_id), "--out", str(out)]) == 2
    assert "Les courriers nomment des foyers" in capsys.readouterr().err
