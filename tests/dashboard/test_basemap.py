"""The basemap: none by default, a local PMTiles file served by Trivue, or an XYZ/WMTS tile server.

The PMTiles file is made here from the committed Rennes extract (raster tiles drawn with Pillow,
written with the ``pmtiles`` Python package). Chromium gets no network: every request that is
not for the test server is aborted and recorded, and must not happen; the "remote" tile server of
the XYZ case is answered by the test itself.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.config import ConfigError, load_settings
from server.db import make_engine
from server.ingest.aggregates import insert_lifts, lift_row
from server.migrate import upgrade_database
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.web.auth import add_user
from server.web.basemap import read_pmtiles_header
from tests.conftest import free_port
from tests.dashboard.seed import PASSWORD, make_event
from tests.server.streets_fixture import RENNES_CENTRE, points_on_streets
from vision.rules import SortingRules

ZOOMS = range(13, 17)
ATTRIBUTION = "Fond de plan : rendu Trivue © les contributeurs d'OpenStreetMap"
TILE_SERVER = "https://tuiles.example.fr"


def _tile_of(lon: float, lat: float, z: int) -> tuple[float, float]:
    n = 2 ** z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return (lon + 180) / 360 * n, y


def _lines() -> list[list[tuple[float, float]]]:
    lines = []
    for feature in json.loads(RENNES_CENTRE.read_text(encoding="utf-8"))["features"]:
        geometry = feature["geometry"]
        parts = [geometry["coordinates"]] if geometry["type"] == "LineString" else geometry["coordinates"]
        lines.extend([(lon, lat) for lon, lat in part] for part in parts)
    return lines


def _png(draw_lines: list[list[tuple[float, float]]], z: int, x: int, y: int) -> bytes:
    image = Image.new("RGB", (256, 256), (242, 239, 233))
    pen = ImageDraw.Draw(image)
    for line in draw_lines:
        pixels = [((tx - x) * 256, (ty - y) * 256) for tx, ty in (_tile_of(lon, lat, z) for lon, lat in line)]
        pen.line(pixels, fill=(190, 180, 160), width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def make_pmtiles(path: Path) -> int:
    """Raster tiles of the Rennes extract, zooms 13 to 16; returns how many tiles were written."""
    lines = _lines()
    lons = [lon for line in lines for lon, _ in line]
    lats = [lat for line in lines for _, lat in line]
    tiles = []
    for z in ZOOMS:
        (x0, y0), (x1, y1) = _tile_of(min(lons), max(lats), z), _tile_of(max(lons), min(lats), z)
        tiles += [(z, x, y) for x in range(int(x0), int(x1) + 1) for y in range(int(y0), int(y1) + 1)]
    with path.open("wb") as f:
        writer = Writer(f)
        for z, x, y in sorted(tiles, key=lambda t: zxy_to_tileid(*t)):
            writer.write_tile(zxy_to_tileid(z, x, y), _png(lines, z, x, y))
        e7 = lambda v: int(v * 10_000_000)  # noqa: E731
        writer.finalize({"tile_type": TileType.PNG, "tile_compression": Compression.NONE,
                         "min_zoom": ZOOMS[0], "max_zoom": ZOOMS[-1], "min_lon_e7": e7(min(lons)),
                         "min_lat_e7": e7(min(lats)), "max_lon_e7": e7(max(lons)), "max_lat_e7": e7(max(lats)),
                         "center_zoom": 15, "center_lon_e7": e7(sum(lons) / len(lons)),
                         "center_lat_e7": e7(sum(lats) / len(lats))},
                        {"attribution": ATTRIBUTION, "name": "rennes-centre-test"})
    return len(tiles)


@pytest.fixture(scope="module")
def rennes_pmtiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("basemap") / "rennes-centre.pmtiles"
    assert make_pmtiles(path) >= 10
    return path


def _lifts(sessions: sessionmaker[Any], zone: Any) -> None:
    """40 lifts on each of five streets, one per rate class, over the last month (for the picture)."""
    rules, now = SortingRules.load(), datetime.now(UTC)
    rows = []
    with sessions() as db:
        locator = Locator.from_session(db)
        for street, dirty in zip(points_on_streets(sessions, 5), (0, 3, 6, 10, 18), strict=True):
            for i in range(40):
                when = now - timedelta(days=1 + i % 28, hours=i % 5)
                items = {"bag": 1} if i < dirty else {"bottle": 2}
                event = make_event("benne-01", len(rows), when, (street.lat, street.lon), items, rules)
                rows.append(lift_row(event, now, zone, locator))
        insert_lifts(db, rows)
        db.commit()


@contextmanager
def serve(data_dir: Path, **basemap: Any) -> Iterator[str]:
    """A server (no MQTT) over the Rennes centre streets with this basemap; yields its URL."""
    import uvicorn

    port = free_port()
    settings = load_settings(env={}, data_dir=data_dir, port=port, cookie_secure=False, ingest_enabled=False,
                             **basemap)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        import_street_file(db, RENNES_CENTRE, commune="Rennes")
        add_user(db, "gestionnaire", PASSWORD, "manager")
        db.commit()
    _lifts(sessions, settings.zone)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.1)
        assert thread.is_alive(), "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


@contextmanager
def offline_map(chromium: Any, url: str, tiles: dict[str, bytes] | None = None) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The map page, signed in, in a Chromium with no network: only ``url`` (and the ``tiles``
    answered here, standing for a remote tile server) can be reached."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR")
    seen: dict[str, Any] = {"blocked": [], "remote": [], "ranges": [], "csp": None}

    def route(handle: Any) -> None:
        target = handle.request.url
        if target.startswith(url):
            handle.continue_()
        elif tiles is not None and target.startswith(TILE_SERVER):
            seen["remote"].append(target)
            handle.fulfill(status=200, content_type="image/png", body=tiles["png"])
        else:
            seen["blocked"].append(target)
            handle.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("response", lambda r: r.status == 206 and seen["ranges"].append(r.request.headers.get("range")))
    try:
        page.goto(url + "/login?next=/carte")
        page.get_by_label("Identifiant").fill("gestionnaire")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        with page.expect_response(lambda r: r.url.startswith(url + "/carte")) as response:
            page.get_by_role("button", name="Se connecter").click()
        seen["csp"] = response.value.headers.get("content-security-policy")
        page.wait_for_selector("body[data-map-state=ready]")
        page.locator(".leaflet-tile-loaded").nth(3).wait_for()  # a locator: the policy forbids eval
        yield page, seen
    finally:
        context.close()


def loaded_tiles(page: Any) -> list[int]:
    return page.evaluate("[...document.querySelectorAll('.leaflet-tile-loaded')].map(t => t.naturalWidth || t.width)")


def test_a_local_pmtiles_basemap_is_served_by_trivue_with_no_network(chromium: Any, rennes_pmtiles: Path,
                                                                     tmp_path: Path, screenshot_dir: Path) -> None:
    assert read_pmtiles_header(rennes_pmtiles) == ("png", 13, 16)
    with serve(tmp_path, basemap_file=rennes_pmtiles, basemap_attribution=ATTRIBUTION) as url, \
            offline_map(chromium, url) as (page, seen):
        assert page.evaluate("document.body.dataset.basemap") == "pmtiles"
        assert set(loaded_tiles(page)) == {256}
        assert seen["ranges"], "the browser read the archive with range requests"
        attribution = page.locator(".leaflet-control-attribution").inner_text()
        assert ATTRIBUTION in attribution and "Rues © les contributeurs d'OpenStreetMap" in attribution
        assert "img-src 'self' data: blob:;" in seen["csp"]  # no foreign origin at all
        page.screenshot(path=str(screenshot_dir / "basemap-pmtiles.png"))
        assert seen["blocked"] == []


def test_an_xyz_tile_server_is_the_only_foreign_origin_the_page_may_load(chromium: Any, rennes_pmtiles: Path,
                                                                         tmp_path: Path) -> None:
    template = TILE_SERVER + "/plan/{z}/{x}/{y}.png"
    tile = _png(_lines(), 16, 32477, 22724)
    with serve(tmp_path, basemap_url=template, basemap_attribution="© Tuiles d'exemple") as url, \
            offline_map(chromium, url, {"png": tile}) as (page, seen):
        assert page.evaluate("document.body.dataset.basemap") == "xyz"
        assert seen["remote"] and all(u.startswith(TILE_SERVER + "/plan/") for u in seen["remote"])
        assert set(loaded_tiles(page)) == {256}
        assert "© Tuiles d'exemple" in page.locator(".leaflet-control-attribution").inner_text()
        assert f"img-src 'self' data: blob: {TILE_SERVER};" in seen["csp"]
        # Any other origin is refused by the browser itself.
        blocked = page.evaluate("""() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', e => resolve(e.blockedURI), {once: true});
            const img = new Image(); img.src = 'https://autre.example.org/t.png'; })""")
        assert blocked == "https://autre.example.org/t.png"
        assert seen["blocked"] == []


def test_no_basemap_by_default_and_the_pages_load_nothing_foreign(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(create_app(load_settings(env={}, data_dir=tmp_path, ingest_enabled=False)))
    page = client.get("/login")
    assert "img-src 'self' data: blob:;" in page.headers["content-security-policy"]
    assert '"basemap": {"attribution": null, "kind": "none"' in page.text
    assert "content-security-policy" not in client.get("/docs").headers  # FastAPI's page, not ours
    assert client.get("/basemap/basemap.pmtiles").status_code == 404


@pytest.mark.parametrize(("settings", "message"), [
    ({"basemap_url": "https://tuiles.example.fr/plan.png", "basemap_attribution": "x"},
     "basemap_url: the tile URL needs {z}, {x}, {y}"),
    ({"basemap_url": "ftp://tuiles.example.fr/{z}/{x}/{y}.png", "basemap_attribution": "x"},
     "basemap_url: expected an https:// tile URL"),
    ({"basemap_url": "https://tuiles.example.fr/{z}/{x}/{y}.png"}, "basemap_attribution is required"),
    ({"basemap_url": "https://t.example.fr/{z}/{x}/{y}.png", "basemap_file": "a.pmtiles", "basemap_attribution": "x"},
     "basemap_url and basemap_file are both set"),
])
def test_bad_basemap_settings_are_refused_naming_the_field(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_settings(env={}, **settings)


def test_a_file_that_is_not_raster_pmtiles_stops_start_up(tmp_path: Path, rennes_pmtiles: Path) -> None:
    not_pmtiles = tmp_path / "plan.mbtiles"
    not_pmtiles.write_bytes(b"SQLite format 3\x00" + bytes(200))
    vector = tmp_path / "vector.pmtiles"
    data = bytearray(rennes_pmtiles.read_bytes())
    data[99] = 1  # tile type: Mapbox vector tiles
    vector.write_bytes(bytes(data))
    for path, reason in ((not_pmtiles, "is not a PMTiles version 3 file"), (vector, "holds vector tiles"),
                         (tmp_path / "absent.pmtiles", "cannot read")):
        settings = load_settings(env={}, data_dir=tmp_path, ingest_enabled=False, basemap_file=path,
                                 basemap_attribution="x")
        with pytest.raises(ConfigError, match=f"basemap_file: .*{reason}"):
            create_app(settings)
