"""The ``trivue`` command: one entry point, subcommands contributed by each package.

Each package's ``cli`` module registers its subcommands and imports its heavy dependencies
only inside the handlers, so ``trivue schema`` starts without numpy and ``trivue server`` without
onnxruntime.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from trivue import __version__

COMMAND_MODULES = (
    "vision.cli", "trivue.demo", "edge.cli", "server.cli", "server.streets_cli", "training.cli", "server.reminders_cli",
    "server.opendata_cli",
)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trivue", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"trivue {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(verbose: bool, json_logs: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if json_logs:
        from trivue.jsonlog import JsonFormatter

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
