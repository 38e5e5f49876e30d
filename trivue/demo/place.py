"""Where the demo runs: the Rennes streets, the demo account, free local ports."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from base.errors import CliError
from base.paths import SAMPLE_STREETS, SHARED_DIR

log = logging.getLogger(__name__)

SHARED_STREETS = SHARED_DIR / "geodata" / "rennes-streets.osm.geojson"
RENNES_CENTRE = (48.1113, -1.6800, 900.0)  # lat, lon, radius (m): the historic centre and its quays
DEMO_USER, DEMO_PASSWORD = "demo", "trivue-demo"
DEFAULT_PORT = 8000



def street_source() -> tuple[Path, str]:
    """The Rennes streets of ../shared, else the extract committed in the repository (said loudly)."""
    if SHARED_STREETS.is_file():
        return SHARED_STREETS, f"{SHARED_STREETS} (© OpenStreetMap contributors, ODbL)"
    if SAMPLE_STREETS.is_file():
        log.warning("%s is absent: using the small Rennes extract committed in the repository (%s)",
                    SHARED_DIR, SAMPLE_STREETS)
        return SAMPLE_STREETS, f"{SAMPLE_STREETS} (committed extract, © OpenStreetMap contributors, ODbL)"
    raise CliError(f"no street data: neither {SHARED_STREETS} nor {SAMPLE_STREETS} exists")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server can listen on ``port``. With SO_REUSEADDR, as uvicorn binds: without it the
    port of a demo stopped a moment ago (its connections in TIME_WAIT for a minute) was "in use"."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def demo_port(variable: str, host: str = "127.0.0.1") -> int:
    """The dashboard's port: ``TRIVUE_PORT`` (the text ``variable``) when set, which must be free;
    else 8000, or any free port when 8000 is taken."""
    text = variable.strip()
    if not text:
        return DEFAULT_PORT if port_free(host, DEFAULT_PORT) else free_port(host)
    if not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise CliError(f"TRIVUE_PORT={variable!r}: expected a port number from 1 to 65535")
    if not port_free(host, int(text)):
        raise CliError(f"TRIVUE_PORT={text} is already in use: choose another port")
    return int(text)
