"""``trivue simulate``: a fleet of trucks collecting real streets, with a saved ground truth.

Streets come from the server's database (``trivue streets import``; street ids then match the
API) or from a street file. Two modes: ``events`` publishes already-judged LiftEvents (load tests,
thousands of trucks), ``full`` writes a burst of real waste photos per lift and runs it through the
real edge agent. Faults on demand; the truth goes to ``lifts.csv`` and ``truth.json``, and the
bin registry the collectivity would hold to ``bins.csv``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from base.errors import CliError
from trivue.sim.options import SimulateOptions

log = logging.getLogger(__name__)


def _area(text: str) -> tuple[float, float, float]:
    try:
        lat, lon, radius = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON,RADIUS_M, got {text!r}") from None
    return lat, lon, radius


def _street_rate(text: str) -> tuple[str, float]:
    name, _, rate = text.rpartition("=")
    try:
        value = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'STREET NAME=RATE', got {text!r}") from None
    if not name or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected 'STREET NAME=RATE' with 0 <= RATE <= 1, got {text!r}")
    return name, value


def add_world_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``simulate`` and ``demo``: trucks, streets, households, contamination."""
    parser.add_argument("--trucks", type=int, default=3, help="number of trucks (default 3)")
    parser.add_argument("--round-km", type=float, default=3.0, help="street length collected per round")
    parser.add_argument("--area", type=_area, metavar="LAT,LON,RADIUS_M", help="only streets within this circle")
    parser.add_argument("--stream", default="recyclables", help="stream collected (default recyclables)")
    parser.add_argument("--bad-share", type=float, default=0.15, help="share of streets that sort badly")
    parser.add_argument("--bad-rate", type=float, default=0.6, help="contamination probability on bad streets")
    parser.add_argument("--base-rate", type=float, default=0.08, help="contamination probability elsewhere")
    parser.add_argument("--street-rate", type=_street_rate, action="append", default=[], metavar="NAME=RATE",
                        help="contamination probability of one street (repeatable)")
    parser.add_argument("--rfid-share", type=float, default=0.6, help="share of bins with an RFID tag")
    parser.add_argument("--gps-sigma", type=float, default=4.0, help="GPS noise, metres (1 sigma)")
    parser.add_argument("--gps-dropout", type=float, default=0.03, help="share of lifts without a fix")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same simulation")


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("simulate", help="simulate collection trucks on real streets (ground truth saved)",
                                description="A fleet of trucks collecting real streets, with a saved ground truth.")
    sim.add_argument("--mode", choices=("events", "full"), default="events",
                     help="events: judged LiftEvents straight to MQTT; full: photos through the edge agent")
    add_world_options(sim)
    sim.add_argument("--days", type=int, default=1, help="days of rounds (the same rounds each day)")
    sim.add_argument("--speed", type=float, default=0.0,
                     help="simulated seconds per real second (0 = as fast as possible)")
    sim.add_argument("--config", type=Path, metavar="FILE",
                     help="server settings YAML (database, broker), as trivue server")
    sim.add_argument("--database-url", help="server database holding the streets (default: the settings')")
    sim.add_argument("--streets", type=Path, help="street file (.osm.pbf/.geojson) instead of the database")
    sim.add_argument("--commune", help="commune of the street file's ways")
    sim.add_argument("--broker", help="mqtt://host:port (default: the server settings' broker)")
    sim.add_argument("--embedded-broker", action="store_true", help="run the broker in-process (on --broker's port)")
    sim.add_argument("--connections", type=int, default=0, help="events mode: MQTT connections (0 = one per truck)")
    sim.add_argument("--store-households", action="store_true",
                     help="add the generated households to the server database as synthetic addresses")
    sim.add_argument("--images", type=Path, nargs=2, metavar=("CLEAN_DIR", "CONTAMINATED_DIR"),
                     help="full mode: photo folders (default: shared datasets, else the committed sample)")
    sim.add_argument("--evidence-photos", type=Path, metavar="DIR",
                     help="events mode: attach a photo of DIR (closed bags) to lifts with a bag error")
    sim.add_argument("--model", type=Path, help="full mode: ONNX model (default: shipped, else COCO)")
    sim.add_argument("--truth", type=Path, metavar="DIR",
                     help="the folder where lifts.csv, truth.json and bins.csv (the bin registry, "
                          "for `trivue bins import`) go (default <data_dir>/simulation)")
    faults = sim.add_argument_group("faults")
    faults.add_argument("--outage", action="append", default=[], metavar="START+SECONDS",
                        help="connectivity loss window in simulated seconds (repeatable)")
    faults.add_argument("--outage-share", type=float, default=0.5, help="share of trucks hit by an outage")
    faults.add_argument("--broker-restart", type=float, action="append", default=[], metavar="SECONDS",
                        help="restart the embedded broker at this simulated time (repeatable)")
    faults.add_argument("--duplicates", type=float, default=0.0, help="share of lifts delivered twice")
    faults.add_argument("--clock-skew", type=float, default=0.0, metavar="SECONDS", help="clock error of skewed trucks")
    faults.add_argument("--skew-share", type=float, default=0.3, help="share of trucks with a skewed clock")
    faults.add_argument("--malformed", type=float, default=0.0, help="malformed messages per lift (probability)")
    faults.add_argument("--camera-dark", metavar="TRUCK:FIRST+LIFTS",
                        help="that truck's camera sees nothing (lights out) for LIFTS lifts from its lift FIRST: "
                             "sent not judged (view_unusable), kept out of the truth's street figures")
    sim.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    options = SimulateOptions.from_args(args)  # every option checked before anything is read or started
    if options.faults.broker_restarts and not options.embedded_broker:
        raise CliError("--broker-restart needs --embedded-broker (the simulator must own the broker)")
    # The server's database code and the MQTT clients load only now: `trivue --help` stays fast.
    from trivue.sim.run import SimulationRun

    return SimulationRun.from_options(options).run()
