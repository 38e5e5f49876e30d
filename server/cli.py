"""``trivue server``, ``trivue dead-letters`` and ``trivue partitions``: one settings file, one database.

``trivue users`` and ``trivue tokens`` live in ``server.web.cli``, beside the accounts.

Heavy imports (FastAPI, SQLAlchemy, paho) happen inside the handlers so ``trivue --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from base.errors import CliError
from base.strict_yaml import describe
from server.command_line import (
    DatabaseUnavailable,
    add_config_argument,
    day_argument,
    open_database,
    settings_from,
    sorting_rules_of,
)
from server.web import cli as accounts_cli

if TYPE_CHECKING:

    from server.config import ServerSettings

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    """An argparse ``type``: checked here, a bad --port is named as the option, where the settings'
    check would blame the --config file (or "settings") for a value typed on the command line."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1 to 65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1 to 65535, got {port}")
    return port


def register(subparsers: argparse._SubParsersAction) -> None:
    server = subparsers.add_parser("server", help="run the API, the dashboard and the MQTT ingest")
    add_config_argument(server)
    server.add_argument("--dev", action="store_true", help="open every route without login (demos only)")
    server.add_argument("--host", default=None, help="listen address (overrides TRIVUE_HOST)")
    server.add_argument("--port", type=_port, default=None, help="listen port (overrides TRIVUE_PORT)")
    server.add_argument("--no-ingest", action="store_true", help="serve the API without subscribing to MQTT")
    server.add_argument("--json-logs", action="store_true", help="one JSON object per log line")
    server.set_defaults(handler=run_server)

    accounts_cli.register(subparsers)  # trivue users, trivue tokens
    replay = subparsers.add_parser("dead-letters", help="list or replay messages refused by ingest")
    replay_actions = replay.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = replay_actions.add_parser("list", help="counts per reason and the newest dead letters (no payloads)")
    listing.add_argument("--reason", default=None, help="only this reason (e.g. unknown_truck)")
    listing.add_argument("--limit", type=int, default=20, help="newest letters shown (default 20, at most 1000)")
    listing.add_argument("--json", action="store_true", help="one JSON object: counts and letters")
    add_config_argument(listing)
    listing.set_defaults(handler=list_dead_letters)
    again = replay_actions.add_parser("replay", help="feed complete dead letters through ingest again")
    again.add_argument("--reason", default=None, help="only this reason (e.g. unknown_truck)")
    again.add_argument("--truck", default=None, help="only letters from this truck (as in the topic)")
    again.add_argument("--since", type=day_argument, default=None, help="only letters received on or after this "
                       "day, YYYY-MM-DD (UTC)")
    again.add_argument("--until", type=day_argument, default=None, help="only letters received on or before this "
                       "day, YYYY-MM-DD (UTC)")
    add_config_argument(again)
    again.set_defaults(handler=replay_dead_letters)

    partitions = subparsers.add_parser(
        "partitions", help="PostgreSQL: list the month partitions of lifts and create the coming ones")
    add_config_argument(partitions)
    partitions.add_argument("--ahead", type=int, default=None,
                            help="months to create after this one (default: what the server keeps, 3)")
    partitions.set_defaults(handler=maintain_partitions)

    aggregates = subparsers.add_parser("aggregates", help="the street figures: recompute them from the raw lifts")
    aggregate_actions = aggregates.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = aggregate_actions.add_parser(
        "rebuild", help="recompute the collection days and their figures in the settings' timezone (after changing "
                        "it); days whose raw lifts retention deleted keep their zone")
    rebuild.add_argument("--timezone", required=True, metavar="ZONE",
                         help="the zone to count days in: the settings' timezone, typed again to confirm")
    add_config_argument(rebuild)
    rebuild.set_defaults(handler=rebuild_day_aggregates)


def app_or_cli_error(create_app: Callable[[ServerSettings], Any], settings: ServerSettings) -> Any:
    """``create_app(settings)``; a bad setting found while building the app (the reminders' rules
    file, a value checked at start-up) becomes one line naming the field and value, exit 2, like a
    bad setting in the file itself, instead of a traceback."""
    from pydantic import ValidationError

    from server.config import ConfigError

    try:
        return create_app(settings)
    except (ConfigError, DatabaseUnavailable) as error:
        raise CliError(str(error)) from None
    except ValidationError as error:
        raise CliError(describe(error, "settings")) from None


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.web.login import plain_http_warning

    settings = settings_from(args, dev=True if args.dev else None, host=args.host, port=args.port,
                             ingest_enabled=False if args.no_ingest else None)
    if settings.dev:
        log.warning("=" * 72)
        log.warning("DEV MODE: NO LOGIN. Anyone reaching %s:%d sees everything.", settings.host, settings.port)
        log.warning("=" * 72)
    _check_listener(settings.host, settings.port)  # before the app starts its ingest and its tasks
    if warning := plain_http_warning(settings):  # else a LAN pilot's logins loop back to the login page
        log.warning(warning)
    app = app_or_cli_error(create_app, settings)
    # uvicorn handles SIGINT/SIGTERM: it finishes requests, then the lifespan stops the ingest.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, proxy_headers=True)
    return 0


def _check_listener(host: str, port: int) -> None:
    """Stop with the setting at fault when the HTTP listener cannot be opened: uvicorn would say
    "Name or service not known" after the start-up, without naming the host."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise CliError(f"host: {host!r} is not an address this machine can listen on ({error})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            raise CliError(f"port: cannot listen on {host}:{port} ({error.strerror or error})") from None


def list_dead_letters(args: argparse.Namespace) -> int:
    import json

    from server.audit import audit
    from server.ingest.inbox import newest_dead_letters
    from server.ingest.letters import held_summary

    if not 1 <= args.limit <= 1000:
        raise CliError(f"--limit must be 1 to 1000, got {args.limit}")
    settings = settings_from(args)
    with open_database(settings) as session:
        try:
            counts, letters = newest_dead_letters(session, args.reason, args.limit)
        except ValueError as error:
            raise CliError(f"--{error}") from None
        held = held_summary(session, settings)  # as the API and the data-quality page say it
        # Reading what trucks sent is audited, as on the API; the payloads are never printed here.
        audit(session, "cli", "dead_letters.read", detail=f"{len(letters)} messages, payloads hidden")
        session.commit()
    rows = [{"id": d.id, "received_at": d.received_at.isoformat(timespec="seconds"), "truck_id": d.truck_id,
             "reason": d.reason, "topic": d.topic, "payload_size": d.payload_size,
             "replayable": d.replayable, "detail": d.detail} for d in letters]
    if args.reason and args.reason not in counts:  # a typo would otherwise look like "nothing refused"
        print(f"no dead letter has the reason {args.reason!r}; stored reasons: {', '.join(sorted(counts)) or 'none'}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({"counts": counts, "held": held, "items": rows}, ensure_ascii=False))
        return 0
    total = sum(counts.values())
    print(f"{total} dead letters" + (": " + ", ".join(f"{r} {n}" for r, n in sorted(counts.items())) if total else ""))
    print(f"held whole for a replay: {held['letters']} letters, {_size(held['bytes'])} of the "
          f"{_size(held['limit_bytes'])} of dead_letter_held_bytes")
    for row in rows:
        replay = "" if row["replayable"] else " (truncated: cannot be replayed)"
        print(f"#{row['id']} {row['received_at']} {row['reason']} {row['truck_id'] or '-'} {row['topic']} "
              f"{row['payload_size']} B{replay}: {row['detail'][:160]}")
    return 0


def _size(count: int) -> str:
    return f"{count / 1024:.1f} KiB" if count < 1024 * 1024 else f"{count / 1024 / 1024:.1f} MiB"


def replay_dead_letters(args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, date, datetime, timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from server.app import LocatorCache, default_locator_factory
    from server.audit import audit
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox
    from server.ingest.metrics import Metrics
    from server.ingest.replay import LetterFilter, ReplayReport, replay_dead_letters
    from server.streets.bins import bin_places

    def midnight(day: date | None) -> datetime | None:
        return datetime.combine(day, datetime.min.time(), UTC) if day is not None else None

    if args.since and args.until and args.since > args.until:
        # Said with the days as typed: the filter's own check sees --until's next midnight instead.
        raise CliError(f"--since {args.since} is after --until {args.until} (both days are included): "
                       "no letter can match")
    try:  # --until names a day included whole: letters received before the next midnight
        letters = LetterFilter(args.reason, args.truck, midnight(args.since),
                               midnight(args.until + timedelta(days=1) if args.until else None))
    except ValueError as error:
        raise CliError(f"--{error}") from None
    settings = settings_from(args)
    # The streams of the rules as they are now: ``--reason unknown_stream`` after a stream was added.
    streams = sorting_rules_of(settings).streams
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  LocatorCache(default_locator_factory), bin_places, streams=streams)
    shown = [time.monotonic()]

    def progress(report: ReplayReport) -> None:
        # A backlog of millions takes a while: a line every few seconds says it is moving.
        if report.replayed < report.total and time.monotonic() - shown[0] >= PROGRESS_EVERY_S:
            shown[0] = time.monotonic()
            print(f"{report.replayed}/{report.total} {_replay_outcome(report)}", file=sys.stderr)

    report = ReplayReport()
    chosen = "" if letters.describe() == "all" else f" ({letters.describe()})"
    with open_database(settings) as session:
        check_day_zone(session, settings)  # a replayed lift is counted on a day of the settings' zone
        try:
            replay_dead_letters(session, inbox, letters, progress=progress, report=report)
        except SQLAlchemyError as error:
            session.rollback()  # the failed chunk's letters stay; the chunks before it are replayed
            audit(session, "cli", "dead_letters.replay", args.reason,
                  f"stopped after {report.replayed} of {report.total}: {_replay_outcome(report)}{chosen}")
            session.commit()
            cause = str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__]
            raise CliError(f"replay stopped after {report.replayed} of {report.total} letters: {cause[0]}") from None
        audit(session, "cli", "dead_letters.replay", args.reason,
              f"{report.replayed} replayed: {report.stored} stored, {report.dead} refused again{chosen}")
        session.commit()
    print(f"{report.replayed} {_replay_outcome(report)}", file=sys.stderr)
    return 0


PROGRESS_EVERY_S = 5.0


def _replay_outcome(report: Any) -> str:
    return f"dead letters replayed: {report.stored} stored, {report.dead} refused again"


def maintain_partitions(args: argparse.Namespace) -> int:
    """``trivue partitions``: what the server also does at start-up and hourly, for cron or a check."""
    from server.config import masked_url
    from server.ingest.partitions import MONTHS_AHEAD, ensure_partitions, partitions

    if args.ahead is not None and not 0 <= args.ahead <= 120:
        raise CliError(f"--ahead: between 0 and 120 months (got {args.ahead})")
    settings = settings_from(args)
    with open_database(settings) as session:
        created = ensure_partitions(session, ahead=MONTHS_AHEAD if args.ahead is None else args.ahead)
        session.commit()
        found = partitions(session)
    if not found:
        # Named, with where PostgreSQL's URL comes from: cron runs this without server.env, and landed
        # silently on data_dir's SQLite file while PostgreSQL's months ran out.
        print(f"lifts is not partitioned (SQLite, {masked_url(settings.db_url)}): nothing to do; "
              "PostgreSQL is TRIVUE_DATABASE_URL (server.env) or database_url", file=sys.stderr)
        return 0
    for partition in found:
        month = f"{partition.month:%Y-%m}" if partition.month else "default"
        if partition.at_least:
            rows = f"over {partition.rows:,} lifts (not analysed: run ANALYZE lifts for an estimate)"
        else:
            rows = f"{'' if partition.counted else '~'}{partition.rows:,} lifts"
        print(f"{partition.name}\t{month}\t{rows}{'  (created now)' if partition.name in created else ''}")
    return 0


def check_day_zone(session: Any, settings: ServerSettings) -> None:
    """Stop a command that writes aggregates when the stored days are in another zone than the
    settings' ``timezone`` (``server.ingest.day_zone``); records the zone in a database without one."""
    from server.ingest.day_zone import DayZoneMismatch, settle_day_zone

    try:
        settle_day_zone(session, settings.timezone)
    except DayZoneMismatch as error:
        raise CliError(str(error)) from None


def rebuild_day_aggregates(args: argparse.Namespace) -> int:
    """``trivue aggregates rebuild --timezone ZONE``: the stored days moved to the settings' zone, in
    one transaction (``server.ingest.day_rebuild``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from rich.progress import Progress

    from server.audit import audit
    from server.ingest.day_rebuild import rebuild_days

    try:  # an unknown zone, checked first: "set it in the settings" would send the user to a refusal
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder of the zone database
        raise CliError(f"--timezone {args.timezone!r}: unknown time zone (an IANA name, e.g. Europe/Paris, "
                       "Indian/Reunion)") from None
    settings = settings_from(args)
    if args.timezone != settings.timezone:  # the server counts new lifts in the settings' zone: they must agree
        raise CliError(f"--timezone {args.timezone!r}: the settings' timezone is {settings.timezone!r}; set "
                       f"timezone: {args.timezone} in the settings (or TRIVUE_TIMEZONE) first, then run this again")
    with open_database(settings) as session:
        with Progress(transient=True) as progress:
            task = progress.add_task("recomputing collection days", total=None)
            report = rebuild_days(session, settings.timezone,
                                  lambda done, total: progress.update(task, completed=done, total=total))
        kept = report.kept
        left = (f"; {report.kept_days} days before {kept.before} keep {kept.zone}: their raw lifts were deleted "
                f"by retention, only their street totals remain, and {kept.before} runs from midnight {kept.zone} "
                f"to midnight {report.new_zone}" if kept else "")
        audit(session, "cli", "aggregates.rebuild", settings.timezone,
              f"from {report.old_zone}: {report.lifts} lifts read, {report.moved} moved{left}")
        session.commit()
    print(f"collection days recomputed in {report.new_zone} (were {report.old_zone}): {report.lifts} lifts read, "
          f"{report.moved} moved to another day{left}.")
    return 0
