"""``trivue demo``: the whole product on one machine, in one command, with no external service.

Embedded MQTT broker -> ``trivue server`` (API, dashboard, ingest) on SQLite in ``--dev`` mode
-> Rennes streets imported -> a demo manager account -> a week of simulated history (judged
events) -> trucks running the real edge agent with the shipped model on real waste photos,
driving real streets and publishing over MQTT. Ctrl-C stops everything cleanly.

``trivue demo --photos`` is the earlier photo-verdict demo (``trivue judge``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from pathlib import Path

from base.errors import CliError
from base.paths import REPO_ROOT, SHARED_DIR, data_dir

log = logging.getLogger(__name__)

SHARED_STREETS = SHARED_DIR / "geodata" / "rennes-streets.osm.geojson"
SAMPLE_STREETS = REPO_ROOT / "trivue" / "sample" / "rennes-centre.geojson"
RENNES_CENTRE = (48.1113, -1.6800, 900.0)  # lat, lon, radius (m): the historic centre and its quays
DEMO_USER, DEMO_PASSWORD = "demo", "trivue-demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    from trivue.judge import add_photo_options
    from trivue.judge import register as register_judge
    from trivue.simulate import add_world_options
    from trivue.simulate import register as register_simulate

    demo = subparsers.add_parser("demo", help="run broker, server and simulated trucks on Rennes streets",
                                 description=__doc__.splitlines()[0])
    add_world_options(demo)
    demo.set_defaults(trucks=3, round_km=5.0)  # about 15 km of the centre: the map fills at once
    demo.add_argument("--speed", type=float, default=10.0,
                      help="simulated seconds per real second for the live trucks (default 10)")
    demo.add_argument("--history-days", type=int, default=7, help="days of simulated history (default 7)")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (default: Ctrl-C)")
    demo.add_argument("--events-only", action="store_true",
                      help="live trucks send judged events without running the edge agent (no model needed)")
    demo.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped model)")
    photos = demo.add_argument_group("photo verdicts instead (as trivue judge)")
    photos.add_argument("--photos", action="store_true", help="judge photos instead of running the fleet")
    add_photo_options(photos, with_model=False)
    demo.set_defaults(handler=run_demo)
    register_judge(subparsers)
    register_simulate(subparsers)


def run_demo(args: argparse.Namespace) -> int:
    if args.photos:
        from trivue.judge import run_judge

        return run_judge(args)
    from trivue.showcase import Showcase
    from trivue.simulate import options_from, stream_of

    stream_of(args.stream)  # bad options stop here, before anything starts or is written
    options_from(args)
    data = data_dir()
    streets, origin = street_source()
    showcase = Showcase(args, data, streets, origin)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        showcase.start()
        showcase.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        showcase.stop()
    return 0


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


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
