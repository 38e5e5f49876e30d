"""The review page in headless Chromium (Debian's, through Playwright): prepare a campaign,
see the evidence photos, reject a false detection with its reason, approve, send, read the effect.
No JavaScript error allowed; a full-page screenshot is kept for a person to look at."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from server.db import utcnow
from server.ingest.models import DeadLetter
from server.reminders.models import Item
from tests.conftest import CHROMIUM, free_port
from tests.dashboard.test_rgaa import OVERFLOWING
from tests.server.reminders_city import City, engine_for, seed_city

PASSWORD = "correct-horse-battery"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[City, str]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    import uvicorn

    from server.app import create_app
    from server.web.auth import add_user
    from server.web.dashboard import missing_vendor_files

    if missing_vendor_files():
        pytest.skip("dashboard libraries missing: run `make dashboard-assets`")
    with engine_for("sqlite", tmp_path, False) as engine:
        city = seed_city(engine, tmp_path, date.today() - timedelta(days=1))
        with city.sessions() as session:
            add_user(session, "gestionnaire", PASSWORD, "manager")
            session.commit()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(city.settings, engine, start_ingest=False),
                                               host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            yield city, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)


# Words only a message of ours would hold, in each language: what must not leak into the other page.
# (Street names, address labels and the seeded campaign's name are data and stay as they are.)
FRENCH_WORDS = re.compile(r"\b(levées?|élément|éléments|campagne|envoyés?|foyers?|aucune?|niveau|seuil|refusée?s?|"
                          r"ajoutés?|ajouté\(s\)|relire|approuvé|courrier|imprimé|échecs?|période|attendu|n'existe|"
                          r"contient|comptées|erreurs|ciblées|témoins|équilibre|méthode|tirages|avant|après|motif|"
                          r"coordonnée|supprimé|anonymisé|ligne|clé|prévu|conclure|envoi)\b", re.IGNORECASE)
ENGLISH_WORDS = re.compile(r"\b(the|and|items?|sent|failed|households?|street|lifts?|campaign|none|level|retry|"
                           r"reminders?|approved|rejected|review|added|updated|refused|line|key|before|after|"
                           r"contact details|conclude)\b")
EXPECT = {
    "fr": {"planned": "messages proposés", "pending": "à relire", "channel": "Envoi prévu par : courrier postal",
           "no_contact": "Aucune coordonnée", "rejected": "refusé", "approved": "approuvé",
           "first_send": "Envoyés : avis imprimé 1. Échecs : 1", "failure": "aucune coordonnée",
           "imported": "1 contact ajouté, 0 mis à jour, 1 ligne refusée",
           "bad_line": "ligne 3 : clé 'maison'", "read_as": "Fichier lu en Windows-1252, séparateur « ; »",
           "retried": "Envoyés : courrier postal 1. Échecs : 0", "sent": "envoyé — courrier postal",
           "verdict": "Trop peu de levées pour conclure", "nav": "Rappels", "again": "déjà en attente de revue dans "
           "la campagne 1", "nothing": "le plan ne propose aucun message", "why": "levées contaminées sur",
           "erased": "1 contact supprimé, 1 élément anonymisé", "name": "Novembre",
           "dead": "2 messages refusés vidés", "sheets": "0 feuille de route réécrite ou supprimée",
           "missing": "courrier introuvable : ",
           "leak": ENGLISH_WORDS},
    "en": {"planned": "messages proposed", "pending": "to review", "channel": "Will be sent by: postal letter",
           "no_contact": "No contact details", "rejected": "rejected", "approved": "approved",
           "first_send": "Sent: printed notice 1. Failed: 1", "failure": "no contact details",
           "imported": "1 contact added, 0 updated, 1 line refused", "bad_line": "line 3: key 'maison'",
           "read_as": "File read as Windows-1252, separator “;”",
           "retried": "Sent: postal letter 1. Failed: 0", "sent": "sent — postal letter",
           "verdict": "Too few lifts to conclude", "nav": "Reminders", "again": "already waiting for review in "
           "campaign 1", "nothing": "the plan proposes no message", "why": "contaminated lifts out of",
           "erased": "1 contact deleted, 1 item anonymised", "name": "November", "missing": "letter not found: ",
           "dead": "2 refused messages emptied", "sheets": "0 route sheets rewritten or deleted",
           "leak": FRENCH_WORDS},
}


def words(lang: str) -> dict[str, str]:
    """The page's own words (dashboard and reminders messages) in ``lang``."""
    from server.reminders.pages import reminder_messages
    from server.web.dashboard import messages

    return {**messages(lang), **reminder_messages(lang)}


PLURAL = re.compile(r"\{(\w+)\|((?:[^|{}]|\{\w+\})*)\|((?:[^|{}]|\{\w+\})*)\}")


def say(text: str, lang: str, **params: int) -> str:
    """A page message as the page writes it (``Trivue.tn``): ``{n|levée|levées}`` agreed with ``n``
    (French 0 and 1 singular), then the numbers."""
    def form(m: re.Match[str]) -> str:
        n = params[m[1]]
        return m[2] if n == 1 or (lang == "fr" and n == 0) else m[3]

    return PLURAL.sub(form, text).format(**params)


def leaks(text: str, city: City, lang: str) -> list[str]:
    """Words of the other language in the page's text, once the seeded data (street and address
    names, household keys, the campaign's name) is taken out."""
    for data in (*[a.label for a in city.addresses.values()], "Rue Hoche, Rennes", EXPECT[lang]["name"]):
        text = text.replace(data, " ")
    text = re.sub(r"\b(bin|address|street):[\w-]+", " ", text)  # household keys are the same in both
    text = re.sub(r"(?:/[\w.-]+){2,}", " ", text)  # a letter's path on the server (/srv/…/campagne-1/…)
    text = re.sub(r"[\w-]+\.pdf\b", " ", text)  # the printed files' names (courrier-campagne-1-3.pdf)
    return sorted({m.group(0) for m in EXPECT[lang]["leak"].finditer(text)})


def print_file(page: Any, link: str) -> Path:
    """Download the mail room's print file from the keyboard: Tab from the link before the print box
    reaches ``link`` (the new letters first, when shown), Enter downloads it; its path."""
    page.locator("#false-csv").focus()
    while not page.evaluate(f"() => document.activeElement.matches({link!r})"):
        assert page.evaluate("() => document.activeElement.closest('#print-letters') !== null "
                             "|| document.activeElement.id === 'false-csv'"), "the print links are not reachable"
        page.keyboard.press("Tab")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    path = Path(download.value.path())
    assert path.read_bytes().startswith(b"%PDF-")
    return path


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_review_page(served: tuple[City, str], chromium: Any, tmp_path_factory: pytest.TempPathFactory,
                     lang: str) -> None:
    """The whole review flow in each language: every message of the page, the API's answers and
    errors included, is in that language; screenshots kept (rappels-fr.png, rappels-en.png)."""
    from playwright.sync_api import expect

    city, url = served
    t, want = words(lang), EXPECT[lang]
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    errors: list[str] = []
    seen: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale=f"{lang}-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda m: m.type == "error" and "status of 4" not in m.text and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    if lang != "fr":
        page.goto(f"{url}/langue/{lang}?next=/rappels")  # the dashboard's language switch (a cookie)
    else:
        page.goto(f"{url}/rappels")
    page.get_by_label(t["login.username"]).fill("gestionnaire")
    page.get_by_label(t["login.password"]).fill(PASSWORD)
    page.get_by_role("button", name=t["login.submit"]).click()
    page.wait_for_url("**/rappels")
    # A year typed wrong: said in the page's language beside the form, nothing sent (it was the
    # API's 422 in English whatever the language).
    asked: list[str] = []
    page.on("request", lambda r: "/api/reminders/plan" in r.url and asked.append(r.url))
    since = page.input_value("#plan-since")
    page.locator("#plan-since").fill("0202-01-01")
    page.get_by_role("button", name=t["rem.simulate"]).click()
    expect(page.locator("#plan-status")).to_have_text(t["filters.dates_range"])
    assert page.get_attribute("#plan-since", "aria-invalid") == "true" and asked == []
    page.locator("#plan-since").fill(since)
    page.get_by_role("button", name=t["rem.simulate"]).click()
    expect(page.locator("#plan-status")).to_contain_text(want["planned"])
    assert page.get_attribute("#plan-since", "aria-invalid") is None and len(asked) == 1
    expect(page.locator("#plan-table")).to_contain_text(city.addresses["target"].label)
    expect(page.locator("#plan-table")).to_contain_text(want["why"])  # the rules' reasons, from the server
    seen.append(page.inner_text("main"))
    page.get_by_label(t["rem.name"]).fill(want["name"])
    page.get_by_role("button", name=t["rem.create"]).click()
    target = page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first
    expect(target).to_contain_text(want["pending"])
    page.get_by_role("button", name=t["rem.create"]).click()  # everything is waiting for review already
    expect(page.locator("#plan-status")).to_contain_text(want["nothing"])  # the API's 422, translated
    seen.append(page.inner_text("#plan-status"))
    page.get_by_role("button", name=t["rem.simulate"]).click()
    expect(page.locator("#plan-table")).to_contain_text(want["again"])  # set aside, and why
    seen.append(page.inner_text("main"))
    images = target.locator("img")
    expect(images).to_have_count(3)
    images.first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=images.first.element_handle())
    expect(target).to_contain_text(want["channel"])
    bin_card = page.locator("#queue li:has-text('BAC-0042')").first
    expect(bin_card).to_contain_text(want["no_contact"])  # flagged at review time, not at send time
    target.get_by_role("button", name=t["rem.reject"]).click()  # no reason chosen: nothing is filed
    expect(page.locator("#campaign-status")).to_have_text(t["rem.reason_needed"])
    expect(target).to_contain_text(want["pending"])
    target.get_by_label(t["rem.reject_reason"]).select_option("false_detection")
    target.get_by_role("button", name=t["rem.reject"]).click()
    expect(page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first).to_contain_text(
        want["rejected"])
    street = page.locator("#queue li:has-text('Rue Hoche, Rennes')").first
    street.get_by_role("button", name=t["rem.approve"]).click()
    expect(page.locator("#queue li:has-text('Rue Hoche, Rennes')").first).to_contain_text(want["approved"])
    bin_card.get_by_role("button", name=t["rem.approve"]).click()
    expect(page.locator("#queue li:has-text('BAC-0042')").first).to_contain_text(want["approved"])
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=t["rem.send"]).click()
    expect(page.locator("#campaign-status")).to_contain_text(want["first_send"])
    bin_card = page.locator("#queue li:has-text('BAC-0042')").first
    expect(bin_card).to_contain_text(want["failure"])  # the stored failure reason, in the page's language
    expect(page.locator("#print-letters")).to_be_hidden()  # a notice, a failed letter: nothing to print
    seen.append(page.inner_text("main"))
    page.screenshot(path=str(shots / f"rappels-{lang}-envoi.png"), full_page=True)
    contacts = Path(shots / "contacts.csv")
    contacts.write_bytes('clé;nom;courriel;téléphone;adresse\nbin:BAC-0042;M. Durand;;;4 rue Hoche, 35000 Rennes\n'
                         "maison;X;;;\n".encode("cp1252"))  # French Excel: semicolons, Windows-1252
    page.set_input_files("#contacts-file", str(contacts))
    page.get_by_role("button", name=t["rem.contacts_import"]).click()
    status = page.locator("#rights-status")
    expect(status).to_contain_text(want["imported"])
    expect(page.locator("#rights-status")).to_contain_text(want["bad_line"])
    expect(status).to_contain_text(want["read_as"])  # a manager sees how the Excel file was read
    seen.append(page.inner_text("main"))
    page.once("dialog", lambda dialog: dialog.accept())
    bin_card.get_by_role("button", name=t["rem.retry"]).click()
    expect(page.locator("#campaign-status")).to_contain_text(want["retried"])
    expect(page.locator("#queue li:has-text('BAC-0042')").first).to_contain_text(want["sent"])
    page.reload()  # the campaign as a manager finds it later: its letter in the mail room's file
    expect(page.locator("#print-letters")).to_be_visible()
    expect(page.locator("#print-all")).to_have_text(say(t["rem.print_letters_n"], lang, n=1, sheets=1))
    expect(page.locator("#print-letters-count")).to_contain_text(t["rem.print_none_yet"])
    expect(page.locator("#print-new")).to_be_hidden()  # nothing printed yet: one file, not two
    expect(page.locator("#effect-verdict")).to_contain_text(want["verdict"])
    expect(page.locator("nav a[aria-current=page]")).to_have_text(want["nav"])
    seen.append(page.inner_text("main"))
    print_file(page, "#print-all")  # the mail room prints it, by keyboard
    expect(page.locator("#print-all")).to_have_text(say(t["rem.print_again_n"], lang, n=1, sheets=1))
    expect(page.locator("#print-letters-count")).to_contain_text(t["rem.print_all_done"])
    expect(page.locator("#print-new")).to_be_hidden()  # nothing new to print
    # A second household's letter goes out later: the page offers it alone, or everything again.
    later = page.locator(f"#queue li:has-text('{city.addresses['opted_out'].label}')").first
    later.get_by_role("button", name=t["rem.approve"]).click()
    expect(page.locator(f"#queue li:has-text('{city.addresses['opted_out'].label}')").first).to_contain_text(
        want["approved"])
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=t["rem.send"]).click()
    expect(page.locator("#print-letters-count")).to_contain_text(say(t["rem.print_split"], lang, fresh=1, printed=1))
    expect(page.locator("#print-new")).to_have_text(say(t["rem.print_new_n"], lang, n=1, sheets=1))
    expect(page.locator("#print-all")).to_have_text(say(t["rem.print_again_n"], lang, n=2, sheets=2))
    seen.append(page.inner_text("main"))
    page.locator("section:has(#campaigns-title)").screenshot(path=str(shots / f"rappels-{lang}-courriers.png"))
    page.set_viewport_size({"width": 320, "height": 900})  # RGAA 10.11: the long links wrap, no scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 320, page.evaluate(OVERFLOWING)
    page.locator("#print-letters").screenshot(path=str(shots / f"rappels-{lang}-courriers-320.png"))
    page.locator("section:has(#rights-title)").screenshot(path=str(shots / f"rappels-{lang}-foyers-320.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    new_only = print_file(page, "#print-new")
    assert len(PdfReader(new_only).pages) == 2  # one letter of one page and its blank back
    expect(page.locator("#print-letters-count")).to_have_text(
        f"{say(t['rem.print_count'], lang, n=2)}{t['rem.semicolon']}{t['rem.print_all_done']}")
    expect(page.locator("#print-new")).to_be_hidden()
    with city.sessions() as session:
        bin_item = session.scalars(select(Item).where(Item.target_key == "bin:BAC-0042")).one()
        assert len(session.scalars(select(Item).where(Item.printed_at.is_not(None))).all()) == 2
    # The bin's letter is not where the server wrote it (moved by hand): its erasure says so, and where.
    letter = city.settings.data_dir / "reminders" / f"campagne-{bin_item.campaign_id}" / \
        f"courrier-campagne-{bin_item.campaign_id}-{bin_item.id}.pdf"
    letter.rename(letter.with_name("courrier-deplace.pdf"))
    with city.sessions() as session:  # two refused lifts of the bin: the erasure empties them and says so
        session.add_all([DeadLetter(received_at=utcnow(), topic="t/benne-01/lift", truck_id="benne-01",
                                    reason="schema", detail="bad", payload=b'{"bin_id": "BAC-0042"}',
                                    payload_size=22) for _ in range(2)])
        session.commit()
    page.get_by_label(t["rem.key"]).fill("bin:INCONNU")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=t["rem.erase"]).click()  # an unknown key: the API's 404, translated
    expect(page.locator("#rights-status")).to_contain_text("bin:INCONNU")
    seen.append(page.inner_text("#rights-status"))
    page.get_by_label(t["rem.key"]).fill("bin:BAC-0042")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=t["rem.erase"]).click()
    expect(page.locator("#rights-status")).to_contain_text(want["erased"])
    expect(page.locator("#rights-status")).to_contain_text(want["dead"])
    expect(page.locator("#rights-status")).to_contain_text(want["sheets"])  # a level-1 letter: on no route sheet
    expect(page.locator("#rights-status")).to_contain_text(say(t["rem.letters_missing"], lang, n=1))
    expect(page.locator("#rights-missing")).to_be_visible()
    expect(page.locator("#rights-missing li")).to_have_text([f"{want['missing']}{letter}"])
    expect(page.locator("#queue")).not_to_contain_text("BAC-0042")
    expect(page.locator(f"#item-{bin_item.id} h3")).to_have_text(say(t["rem.erased_item"], lang, id=bin_item.id))
    expect(page.locator(f"#item-{bin_item.id} a")).to_have_count(0)  # no preview of a letter to nobody
    expect(page.locator("#print-letters-count")).to_contain_text(say(t["rem.print_left_out"], lang, n=1))
    seen.append(page.inner_text("main"))
    page.screenshot(path=str(shots / f"rappels-{lang}.png"), full_page=True)
    context.close()
    assert errors == [], errors
    left = leaks("\n".join(seen), city, lang)
    assert not left, f"words of the other language on the {lang} page: {left}"


EFFECT_WORDS = {
    "fr": ("Baisse de la contamination attribuable", "différence de différences", "Équilibre avant la campagne",
           "rappels-effet.png"),
    "en": ("Decrease in contamination attributable", "difference in differences", "Balance before the campaign",
           "rappels-effet-en.png"),
}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_effect_plot_on_the_campaign_page(tmp_path: Path, chromium: Any, tmp_path_factory: pytest.TempPathFactory,
                                          lang: str) -> None:
    """A simulated campaign (``trivue.reminder_effect``: a 40 % drop for reached households) on the
    page: the verdict, balance, method, and the weekly plot with the send marked, in each language;
    screenshot kept."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    import uvicorn
    from playwright.sync_api import expect
    from sqlalchemy.orm import Session

    from server.app import create_app
    from server.config import ServerSettings
    from server.db import make_engine
    from server.migrate import upgrade_database
    from server.reminders.models import upgrade_reminders
    from server.web.auth import add_user
    from server.web.dashboard import missing_vendor_files
    from trivue.sim.reminder_effect import store_trial

    if missing_vendor_files():
        pytest.skip("dashboard libraries missing: run `make dashboard-assets`")
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    upgrade_reminders(engine)
    with Session(engine) as session:
        store_trial(session, 21, 0.4)
        add_user(session, "gestionnaire", PASSWORD, "manager")
        session.commit()
    settings = ServerSettings(data_dir=tmp_path, database_url=str(engine.url), cookie_secure=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine, start_ingest=False), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    errors: list[str] = []
    try:
        t, (verdict, method, balance, shot) = words(lang), EFFECT_WORDS[lang]
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale=f"{lang}-FR")
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/langue/{lang}?next=/rappels")
        page.get_by_label(t["login.username"]).fill("gestionnaire")
        page.get_by_label(t["login.password"]).fill(PASSWORD)
        page.get_by_role("button", name=t["login.submit"]).click()
        page.wait_for_url("**/rappels")
        expect(page.locator("#effect-verdict")).to_contain_text(verdict)
        expect(page.locator("#effect-details")).to_contain_text(method)
        expect(page.locator("#effect-details")).to_contain_text(balance)
        # A street-only campaign: no « Foyers ciblés » row of dashes; counts agree with their noun.
        table = page.locator("#effect-table tbody")
        expect(table.locator("tr")).to_have_count(2)
        expect(table).not_to_contain_text(t["rem.group.households"])
        assert "(s)" not in table.inner_text() and "(0 " not in table.inner_text()
        page.wait_for_function("() => Chart.getChart('effect-chart')?.data.datasets.length === 2")
        points = [p for p in page.evaluate("() => Chart.getChart('effect-chart').data.datasets[0].data") if p]
        assert points[-1] < points[0] - 5  # targeted streets: lower after the send (percent)
        # The plotted weeks as a table too (RGAA 1.6), opened from its summary with the keyboard.
        page.get_by_text(t["common.chart_data"]).focus()
        page.keyboard.press("Enter")
        weeks = page.evaluate("() => Chart.getChart('effect-chart').data.labels.map(String)")
        rows = page.locator("#effect-weeks-table tbody tr")
        expect(rows).to_have_count(len(weeks))
        assert [rows.nth(i).locator("th").inner_text() for i in range(len(weeks))] == weeks
        plotted = page.evaluate("() => Chart.getChart('effect-chart').data.datasets[0].data")
        targeted = [rows.nth(i).locator("td").first.inner_text() for i in range(len(weeks))]
        # a week not plotted (no lifts, or fewer than the floor): –; each week says its lifts (plural agreed)
        assert [not cell.startswith("–") for cell in targeted] == [p is not None for p in plotted]
        report = page.evaluate("fetch('/api/reminders/campaigns/1/effect').then((r) => r.json())")
        noun = {"fr": ("levée", "levées"), "en": ("lift", "lifts")}[lang]
        for cell, n in zip(targeted, report["series"]["targeted_lifts"], strict=True):
            assert re.search(rf"\b{n:,} {noun[0] if n == 1 or (lang == 'fr' and n == 0) else noun[1]}\b",
                             cell.replace("\u202f", ",").replace("\xa0", ",")), cell
        footer = "() => typeof Chart.getChart('effect-chart').options.plugins.tooltip.callbacks.footer"
        assert page.evaluate(footer) == "function"  # the chart's tooltip says the week's lifts too
        page.locator("#effect-title").scroll_into_view_if_needed()
        page.locator("section:has(#effect-title)").screenshot(path=str(shots / shot))
        context.close()
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    assert errors == [], errors
