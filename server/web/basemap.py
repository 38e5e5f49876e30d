"""The map's background layer, offline by default, and the pages' content security policy.

Three kinds, from the settings: ``none`` (the default: street lines on a plain background, no
request leaves the server), a local raster **PMTiles** file served by this server (a deployment
without internet still gets a basemap; the browser reads it with HTTP range requests through the
``pmtiles`` npm package's Leaflet adapter), or an **XYZ / WMTS** tile URL (the IGN Géoplateforme
"Plan IGN", an OpenStreetMap tile server the collectivité may use). The content security policy
of the pages lets images come from this server and from the configured tile origin only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.config import ConfigError, ServerSettings

PMTILES_PATH = "/basemap/basemap.pmtiles"
# PMTiles v3 header (https://github.com/protomaps/PMTiles/blob/main/spec/v3/spec.md): 127 bytes,
# tile type at byte 99 (1 vector, 2 png, 3 jpeg, 4 webp, 5 avif), min and max zoom at 100 and 101.
PMTILES_HEADER = 127
RASTER_TYPES = {2: "png", 3: "jpeg", 4: "webp", 5: "avif"}


@dataclass(frozen=True, slots=True)
class Basemap:
    """What the map page draws under the streets, and the one foreign origin it may load from."""

    kind: str  # none | pmtiles | xyz
    url: str | None = None  # the tile template, or this server's path of the PMTiles file
    attribution: str | None = None
    max_zoom: int = 19  # deepest zoom the tiles exist at; Leaflet enlarges them beyond
    file: Path | None = None

    @property
    def origin(self) -> str | None:
        """The tile server's origin (scheme://host[:port]), None when tiles come from this server."""
        if self.kind != "xyz" or self.url is None:
            return None
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def script_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "attribution": self.attribution, "maxZoom": self.max_zoom}


def read_pmtiles_header(path: Path) -> tuple[str, int, int]:
    """(tile format, min zoom, max zoom) of a PMTiles v3 file; ConfigError naming the problem."""
    try:
        with path.open("rb") as f:
            head = f.read(PMTILES_HEADER)
    except OSError as error:
        raise ConfigError(f"basemap_file: cannot read {str(path)!r} ({error.strerror})") from None
    if len(head) < PMTILES_HEADER or head[:7] != b"PMTiles" or head[7] != 3:
        raise ConfigError(f"basemap_file: {str(path)!r} is not a PMTiles version 3 file")
    tile_type, min_zoom, max_zoom = struct.unpack_from("<BBB", head, 99)
    if tile_type not in RASTER_TYPES:
        raise ConfigError(f"basemap_file: {str(path)!r} holds vector tiles (type {tile_type}); the map draws "
                          "raster PMTiles (png, jpeg, webp): render the basemap to raster tiles first")
    return RASTER_TYPES[tile_type], min_zoom, max_zoom


def basemap_from(settings: ServerSettings) -> Basemap:
    """The settings' basemap, checked: a file that cannot serve stops start-up with its reason."""
    if settings.basemap_file is not None:
        _, _, max_zoom = read_pmtiles_header(settings.basemap_file)
        return Basemap("pmtiles", PMTILES_PATH, settings.basemap_attribution, max_zoom, settings.basemap_file)
    if settings.basemap_url is not None:
        return Basemap("xyz", settings.basemap_url, settings.basemap_attribution, settings.basemap_max_zoom)
    return Basemap("none")


def content_security_policy(basemap: Basemap) -> str:
    """Scripts, styles and data from this server only; images also from the tile origin, if any.

    ``blob:`` images are the PMTiles adapter's tiles; ``'unsafe-inline'`` styles are Leaflet's and
    Chart.js' positioning (style attributes), never scripts.
    """
    tiles = f" {basemap.origin}" if basemap.origin else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{tiles}; connect-src 'self'; font-src 'self'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class PagePolicy:
    """ASGI middleware: the content security policy on every HTML page of the dashboard.

    Plain ASGI rather than ``BaseHTTPMiddleware``, which would buffer the alerts' event stream.
    ``/docs`` (Swagger UI, from this server's files) starts with an inline script, which the
    policy's ``script-src 'self'`` would block: it is left alone.
    """

    def __init__(self, app: Any, policy: str) -> None:
        self.app, self.header = app, (b"content-security-policy", policy.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/docs":
            await self.app(scope, receive, send)
            return

        async def with_policy(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                html = any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                if html and not any(k == self.header[0] for k, _ in headers):
                    message = {**message, "headers": [*headers, self.header]}
            await send(message)

        await self.app(scope, receive, with_policy)


def basemap_router(basemap: Basemap) -> APIRouter:
    """``GET /basemap/basemap.pmtiles`` when the basemap is a local file (range requests: the
    browser reads the directory, then only the tiles on screen)."""
    router = APIRouter(include_in_schema=False)
    if basemap.file is not None:
        path = basemap.file

        @router.get(PMTILES_PATH)
        def pmtiles_file() -> FileResponse:
            # Not behind the login: a basemap of public streets, and the tiles carry no Trivue data.
            return FileResponse(path, media_type="application/vnd.pmtiles",
                                headers={"Cache-Control": "public, max-age=86400"})

    return router
