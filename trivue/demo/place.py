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
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
