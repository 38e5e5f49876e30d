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


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran, nested ones included: ``trivue reminders plan``'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return command_parser(action.choices[getattr(args, action.dest)], args)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse blames `trivue` itself, with its usage; the command's says which --help to read
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
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
