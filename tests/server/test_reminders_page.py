"""The review page in headless Chromium (Debian's, through Playwright): prepare a campaign,
see the evidence photos, reject a false detection with its reason, approve, send, read the effect.
No JavaScript error allowed; a full-page screenshot is kept for a person to look at."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHROMIUM, free_port
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


def test_review_page(served: tuple[City, str], chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from playwright.sync_api import expect

    city, url = served
    shots = Path(os.environ.get("TRIVUE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("reminders-shots"))
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/rappels")
    page.get_by_label("Identifiant").fill("gestionnaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/rappels")
    page.get_by_role("button", name="Simuler").click()
    expect(page.locator("#plan-status")).to_contain_text("message(s) proposés")
    expect(page.locator("#plan-table")).to_contain_text(city.addresses["target"].label)
    page.get_by_label("Nom de la campagne").fill("Novembre")
    page.get_by_role("button", name="Créer la campagne").click()
    target = page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first
    expect(target).to_contain_text("à relire")
    images = target.locator("img")
    expect(images).to_have_count(3)
    images.first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=images.first.element_handle())
    expect(target).to_contain_text("Envoi prévu par : courrier postal")
    bin_card = page.locator("#queue li:has-text('BAC-0042')").first
    expect(bin_card).to_contain_text("Aucune coordonnée")  # flagged at review time, not at send time
    target.get_by_role("button", name="Refuser").click()  # no reason chosen: nothing is filed
    expect(page.locator("#campaign-status")).to_contain_text("Choisissez le motif du refus")
    expect(target).to_contain_text("à relire")
    target.get_by_label("Motif du refus").select_option("false_detection")
    target.get_by_role("button", name="Refuser").click()
    expect(page.locator(f"#queue li:has-text('{city.addresses['target'].label}')").first).to_contain_text("refusé")
    street = page.locator("#queue li:has-text('Rue Hoche, Rennes')").first
    street.get_by_role("button", name="Approuver").click()
    expect(page.locator("#queue li:has-text('Rue Hoche, Rennes')").first).to_contain_text("approuvé")
    bin_card.get_by_role("button", name="Approuver").click()
    expect(page.locator("#queue li:has-text('BAC-0042')").first).to_contain_text("approuvé")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Envoyer les messages approuvés").click()
    expect(page.locator("#campaign-status")).to_contain_text("Envoyés : avis imprimé 1. Échecs : 1")
    bin_card = page.locator("#queue li:has-text('BAC-0042')").first
    expect(bin_card).to_contain_text("aucune coordonnée")
    contacts = Path(shots / "contacts.csv")
    contacts.write_bytes('clé;nom;courriel;téléphone;adresse\nbin:BAC-0042;M. Durand;;;4 rue Hoche, 35000 Rennes\n'
                         "maison;X;;;\n".encode("cp1252"))  # French Excel: semicolons, Windows-1252
    page.set_input_files("#contacts-file", str(contacts))
    page.get_by_role("button", name="Importer").click()
    status = page.locator("#rights-status")
    expect(status).to_contain_text("1 contact(s) ajouté(s), 0 mis à jour, 1 ligne(s) refusée(s)")
    expect(page.locator("#rights-status")).to_contain_text("ligne 3 : clé 'maison'")
    page.once("dialog", lambda dialog: dialog.accept())
    bin_card.get_by_role("button", name="Réessayer").click()
    expect(page.locator("#campaign-status")).to_contain_text("Envoyés : courrier postal 1. Échecs : 0")
    expect(page.locator("#queue li:has-text('BAC-0042')").first).to_contain_text("envoyé — courrier postal")
    expect(page.locator("#effect-verdict")).to_contain_text("Trop peu de levées pour conclure")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Rappels")
    page.get_by_label("Clé du foyer").fill("bin:BAC-0042")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Effacer les données du foyer").click()
    expect(page.locator("#rights-status")).to_contain_text("1 contact(s) supprimé(s), 1 élément(s) anonymisé(s)")
    expect(page.locator("#queue")).not_to_contain_text("BAC-0042")
    page.screenshot(path=str(shots / "rappels.png"), full_page=True)
    context.close()
    assert errors == [], errors


def test_effect_plot_on_the_campaign_page(tmp_path: Path, chromium: Any,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """A simulated campaign (``trivue.reminder_effect``: a 40 % drop for reached households) on the
    page: the verdict, balance, method, and the weekly plot with the send marked; screenshot kept."""
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
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/rappels")
        page.get_by_label("Identifiant").fill("gestionnaire")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/rappels")
        expect(page.locator("#effect-verdict")).to_contain_text("Baisse de la contamination attribuable")
        expect(page.locator("#effect-details")).to_contain_text("différence de différences")
        expect(page.locator("#effect-details")).to_contain_text("Équilibre avant la campagne")
        page.wait_for_function("() => Chart.getChart('effect-chart')?.data.datasets.length === 2")
        points = [p for p in page.evaluate("() => Chart.getChart('effect-chart').data.datasets[0].data") if p]
        assert points[-1] < points[0] - 5  # targeted streets: lower after the send (percent)
        page.locator("#effect-title").scroll_into_view_if_needed()
        page.locator("section:has(#effect-title)").screenshot(path=str(shots / "rappels-effet.png"))
        context.close()
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    assert errors == [], errors
