"""A mairie's account in the browser: its menu holds the map and the ranking only, the map opens on
its commune's streets (the others are not drawn, nor in the commune filter), and another commune's
street page or a page not open to it is refused. A small server of its own (no ingest, four streets
in three communes), so that the shared city of the other dashboard tests keeps its streets' codes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import insert

from server.app import create_app
from server.config import load_settings
from server.ingest.models import StreetDay
from server.ingest.rollups import rebuild_rollups
from tests.conftest import free_port
from tests.server.conftest import wait_for

PASSWORD = "correct horse battery staple"
STREETS = [(1, "Rue Jeanne d'Arc", "Orléans", "45234"), (2, "Rue de Bourgogne", "Orléans", "45234"),
           (3, "Rue de la Mairie", "Saint-Jean-de-Braye", "45284"), (4, "Rue Sans Code", "Olivet", None)]


def line(n: int) -> str:
    # Orléans' two streets side by side; Saint-Jean-de-Braye's and Olivet's kilometres away.
    lon, lat = (1.905 + n * 0.002, 47.902) if n <= 2 else (1.90 + n * 0.03, 47.90 + n * 0.01)
    return json.dumps({"type": "LineString", "coordinates": [[lon, lat], [lon + 0.0015, lat + 0.001]]})


@pytest.fixture(scope="module")
def scoped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from server.streets.models import Street
    from server.web.auth import add_user

    port = free_port()
    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("scope-page"), ingest_enabled=False,
                             port=port, cookie_secure=False)
    app = create_app(settings)
    day = date.today() - timedelta(days=3)  # inside the map's default period
    with app.state.ctx.sessions() as session:
        session.add_all([Street(id=sid, name=name, commune=commune, code_insee=code, name_key=name.lower(),
                                geometry=line(sid), length_m=150.0) for sid, name, commune, code in STREETS])
        session.execute(insert(StreetDay), [
            {"street_id": sid, "day": day, "stream": "recyclables", "lifts": 40, "contaminated": 4 * sid,
             "alerts": 0, "score": 1.0} for sid, *_ in STREETS])
        rebuild_rollups(session)
        add_user(session, "mairie-orleans", PASSWORD, "viewer", communes=["45234"])
        session.commit()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="uvicorn-scope", daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def test_a_mairies_account_sees_its_communes_map_only(chromium: Any, scoped_server: str,
                                                      screenshot_dir: Path) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{scoped_server}/carte")
        page.wait_for_url("**/login?next=*")
        page.get_by_label("Identifiant").fill("mairie-orleans")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/carte*")
        page.wait_for_selector("body[data-map-state=ready]")
        assert page.locator("nav .nav a").all_inner_texts() == ["Carte", "Classement"]
        assert page.locator("#whoami").inner_text() == "mairie-orleans (lecteur, communes 45234)"
        assert page.locator("#f-commune option").all_inner_texts() == ["Toutes", "Orléans"]
        worst = page.locator("#worst-list li").all_inner_texts()
        assert len(worst) == 2 and all("Mairie" not in w and "Sans Code" not in w for w in worst), worst
        assert page.locator("#map-summary").inner_text().startswith("2 rues"), page.locator("#map-summary").inner_text()
        shot = screenshot_dir / "commune-scope-map.png"
        page.screenshot(path=str(shot), full_page=True)
        page.goto(f"{scoped_server}/classement")  # the map's text alternative: the same two streets
        page.wait_for_selector("body[data-ready=true]")
        ranked = page.locator("#worst tbody tr").all_inner_texts()
        assert len(ranked) == 2 and all("Orléans" in row for row in ranked), ranked
        page.goto(f"{scoped_server}/rues/1")
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("h1").inner_text() == "Rue Jeanne d'Arc"
        refused = page.goto(f"{scoped_server}/flotte")  # by its address: a page saying why, in French
        assert refused is not None and refused.status == 403
        assert page.locator("h1").inner_text() == "Page non ouverte à ce compte"
        assert "limité aux communes 45234" in page.locator("main").inner_text()
        assert page.locator("nav .nav a").all_inner_texts() == ["Carte", "Classement"]
        page.screenshot(path=str(screenshot_dir / "commune-scope-refused.png"), full_page=True)
        missing = page.goto(f"{scoped_server}/rues/3")
        assert missing is not None and missing.status == 404
        assert errors == []
    finally:
        context.close()
