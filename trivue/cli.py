"""The ``trivue`` command: one entry point, subcommands contributed by each package.

Each package's ``cli`` module registers its subcommands and imports its heavy dependencies
only inside the handlers, so ``trivue schema`` starts without numpy and ``trivue server`` without
onnxruntime.
"""

from __future__ import annotations

import argparse
import logging
import sys

import edge.cli
import server.cli
import server.fleet.cli
import server.labels.cli
import server.opendata.cli
import server.reminders.cli
import server.streets.cli
import training.cli
import trivue.demo.cli
import vision.cli
from base.errors import CliError
from base.version import __version__
from trivue.jsonlog import JsonFormatter

# Each registers its subcommands (and the demo registers ``judge`` and ``simulate``), in help order.
COMMAND_MODULES = (vision.cli, trivue.demo.cli, edge.cli, server.cli, server.fleet.cli, server.streets.cli,
                   training.cli, server.reminders.cli, server.opendata.cli, server.labels.cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trivue", description="Trivue: household waste sorting measured from collection trucks. "
                                   "`trivue COMMAND --help` says more about each command.")
    parser.add_argument("--version", action="version", version=f"trivue {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def configure_logging(verbose: bool, json_logs: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if json_logs:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                            datefmt="%H:%M:%S", force=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, getattr(args, "json_logs", False))
    try:
        return int(args.handler(args) or 0)
    except CliError as error:
        print(f"trivue {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trivue detect ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
