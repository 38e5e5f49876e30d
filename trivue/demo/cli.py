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
from pathlib import Path

from base.errors import CliError
from base.paths import data_dir
from trivue.demo.effect import register as register_effect
from trivue.demo.judge import add_photo_options, run_judge
from trivue.demo.judge import register as register_judge
from trivue.demo.options import DemoOptions
from trivue.demo.place import street_source
from trivue.sim.cli import add_world_options
from trivue.sim.cli import register as register_simulate

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run broker, server and simulated trucks on Rennes streets",
                                 description="The whole product on one machine, in one command, with no external "
                                 "service: broker, server and simulated trucks.")
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
    register_effect(subparsers)
    register_simulate(subparsers)


def run_demo(args: argparse.Namespace) -> int:
    if args.photos:
        return run_judge(args)
    # The server, the broker and the edge agent load only now: `trivue --help` stays fast.
    from sqlalchemy.exc import OperationalError

    from server.config import masked_url
    from trivue.demo.showcase import Showcase

    options = DemoOptions.from_args(args)  # bad options stop here, before anything starts or is written
    streets, origin = street_source()
    showcase = Showcase(options, data_dir(), streets, origin)
    # SIGINT too: a demo started as a background job or under nohup inherits SIGINT ignored, and
    # Python then keeps it ignored, so Ctrl-C (or `kill -INT`) would never stop it.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        showcase.start()
        showcase.wait(options.duration)
    except KeyboardInterrupt:
        pass
    except OSError as error:  # the data folder's disk full, or not writable, while the demo writes
        log.debug("the demo failed", exc_info=True)
        raise CliError(f"{error.filename or data_dir()}: {error.strerror or error}") from None
    except OperationalError as error:  # the same, met by SQLite ("database or disk is full")
        log.debug("the demo failed", exc_info=True)
        raise CliError(f"database {masked_url(showcase.settings.db_url)}: {error.orig}") from None
    finally:
        showcase.stop()
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
