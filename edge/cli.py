"""``trivue edge``: the truck agent (camera -> lift events -> durable outbox -> MQTT)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

from base.errors import CliError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    edge = subparsers.add_parser(
        "edge", help="run the truck agent",
        description="The truck agent: camera frames -> lift events -> durable outbox -> MQTT (docs/edge.md).")
    edge.add_argument("--config", type=Path, metavar="FILE",
                      help="YAML settings file (TRIVUE_EDGE_* variables override it)")
    edge.add_argument("--source", help="burst folder root, video file, rtsp://... or usb:N")
    edge.add_argument("--truck-id", help="fleet number of this truck")
    edge.add_argument("--stream", help="stream collected: recyclables, glass, residual, biowaste, paper")
    edge.add_argument("--broker", help="mqtt[s]://user:pass@host:port")
    edge.add_argument("--outbox", type=Path, help="SQLite outbox file")
    edge.add_argument("--gps", help="fixed:LAT,LON, an .nmea/.gpx file to replay, gpsd://host, or a serial device")
    edge.add_argument("--model", type=Path, help="ONNX model")
    edge.add_argument("--once", action="store_true",
                      help="process the source to its end, wait for every acknowledgement, exit (0 = all delivered)")
    edge.add_argument("--json-logs", action="store_true", help="one JSON object per log line")
    edge.add_argument("--example-config", action="store_true",
                      help="print the example settings (truck.example.yaml, shipped in the package) and exit")
    edge.set_defaults(handler=run_edge)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as a settings tree (only those given)."""
    tree: dict[str, Any] = {}
    flat = {"source": args.source, "truck_id": args.truck_id, "stream": args.stream, "model": args.model}
    tree.update({k: v for k, v in flat.items() if v is not None})
    if args.broker:
        tree["uplink"] = {"broker": args.broker}
    if args.outbox:
        tree["outbox"] = {"path": args.outbox}
    if args.gps:
        tree["gps"] = {"source": args.gps}
    return tree


def _stop_gracefully(agent: Any) -> None:
    """SIGTERM (systemd stop, the driver turns the key) and SIGINT (Ctrl-C): finish the lift in
    progress, commit it, flush for a bounded time, exit 0. A second signal stops at once (what is
    committed stays in the outbox)."""

    def handler(signum: int, _frame: object) -> None:
        if agent.stopping:
            raise KeyboardInterrupt
        log.info("%s: finishing the lift in progress, then stopping (again to stop at once)",
                 signal.Signals(signum).name)
        agent.request_stop()  # may raise into the loop's wait for a frame; Agent.run catches it

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


EXAMPLE = Path(__file__).with_name("truck.example.yaml")


def run_edge(args: argparse.Namespace) -> int:
    if args.example_config:  # a truck installed from the wheel has no checkout to copy it from
        print(EXAMPLE.read_text(encoding="utf-8"), end="")
        return 0
    from edge.app import Agent
    from edge.camera import SourceError
    from edge.config import ConfigError, load_settings
    from edge.gps import GpsError
    from edge.outbox import OutboxError
    from edge.pipeline import LiftNotKept
    from vision.model import DetectorError
    from vision.rules import RulesError

    try:
        settings = load_settings(args.config, overrides(args), overrides_source="command line")
        agent = Agent.create(settings)
    except (ConfigError, DetectorError, RulesError, GpsError, SourceError, OutboxError) as error:
        raise CliError(str(error)) from None
    _stop_gracefully(agent)
    try:
        return agent.run(once=args.once)
    except SourceError as error:
        raise CliError(str(error)) from None
    except LiftNotKept as error:
        raise CliError(f"{error}; stopped so that no further lift is lost (outbox {settings.outbox.path}); "
                       "what was read since the last kept lift is read again on restart") from None
    except KeyboardInterrupt:
        log.info("stopping; %d message(s) wait in the outbox", agent.outbox.depth())
        return 0
    finally:
        agent.close()
