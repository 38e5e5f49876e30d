"""``trivue streets`` and ``trivue addresses``: load OSM streets and address files, inspect them,
re-match stored lifts. They act on the server's database (``--config`` / ``TRIVUE_*`` settings,
as ``trivue server``); heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from base.errors import CliError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session


# Share of unlinked addresses from which an import advises importing the streets: a commune with
# streets leaves a few percent unlinked (a residence far from its street), one without them all.
NO_STREETS_SHARE = 0.9


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="server settings (YAML), as trivue server")
    parser.add_argument("--database-url", metavar="URL",
                        help="database to use instead of the settings' (also TRIVUE_DATABASE_URL)")


def register(subparsers: argparse._SubParsersAction) -> None:
    streets = subparsers.add_parser("streets", help="import OSM streets, list them, re-match lifts")
    commands = streets.add_subparsers(dest="streets_command", metavar="ACTION", required=True)

    imp = commands.add_parser("import", help="load streets from an .osm.pbf or GeoJSON file")
    imp.add_argument("file", type=Path, help="an OpenStreetMap extract (.osm.pbf) or a GeoJSON of ways")
    imp.add_argument("--commune", help="commune of every way (default: OSM admin boundaries or a "
                                       "'commune' property)")
    imp.add_argument("--insee", metavar="CODE", help="with --commune: its code INSEE (e.g. 35238; default: "
                                                      "the BAN addresses', or the OSM boundary's ref:INSEE)")
    imp.set_defaults(handler=_import_streets)

    rematch = commands.add_parser("rematch", help="re-link addresses and re-match every stored lift")
    rematch.set_defaults(handler=_rematch)

    listing = commands.add_parser("list", help="streets with their length and addresses")
    listing.add_argument("--commune", help="only this commune's streets (its name)")
    listing.add_argument("--name", help="part of the name (case and accents ignored)")
    listing.add_argument("--limit", type=int, default=50, help="streets shown (default 50, at least 1)")
    listing.set_defaults(handler=_list)

    stats = commands.add_parser("stats", help="streets, segments and addresses per commune")
    stats.set_defaults(handler=_stats)

    locate = commands.add_parser("locate", help="the street and address a GPS fix matches")
    locate.add_argument("lat", type=float, help="latitude, decimal degrees (e.g. 48.1113)")
    locate.add_argument("lon", type=float, help="longitude, decimal degrees (e.g. -1.6800)")
    locate.add_argument("--heading", type=float, help="course over ground, degrees")
    locate.add_argument("--accuracy", type=float, help="GPS accuracy, metres")
    locate.add_argument("--max-distance", type=float, default=30.0, help="metres (default 30)")
    locate.set_defaults(handler=_locate)

    addresses = subparsers.add_parser("addresses", help="import Base Adresse Nationale / Toulouse addresses")
    acommands = addresses.add_subparsers(dest="addresses_command", metavar="ACTION", required=True)
    aimp = acommands.add_parser("import", help="load a BAN CSV (.csv, .csv.gz, .csv.bz2) or Toulouse extract")
    aimp.add_argument("file", type=Path, help="the BAN CSV or the Toulouse extract")
    aimp.add_argument("--commune", help="commune of every address (Toulouse extract default: Toulouse)")
    aimp.set_defaults(handler=_import_addresses)
    synth = acommands.add_parser("synthesize", help="made-up house numbers along a commune's streets "
                                                    "(demos without an address file; flagged synthetic)")
    synth.add_argument("--commune", required=True, help="the commune whose streets get numbers")
    synth.add_argument("--spacing", type=float, default=25.0, help="metres between numbers (default 25)")
    synth.add_argument("--postcode", default="", help="5-digit postcode on the addresses (default: none)")
    synth.set_defaults(handler=_synthesize)

    bins = subparsers.add_parser("bins", help="the bin registry: each RFID tag's address (parc de bacs)")
    bcommands = bins.add_subparsers(dest="bins_command", metavar="ACTION", required=True)
    bimp = bcommands.add_parser("import", help="load a CSV of tags and their BAN address ids (.csv, .gz, .bz2)")
    bimp.add_argument("file", type=Path, help="the CSV: a tag column and a BAN address id column")
    bimp.add_argument("--replace", action="store_true",
                      help="the file is the whole inventory: remove the tags it does not list")
    bimp.add_argument("--allow-removals", action="store_true",
                      help="with --replace, remove more than half of the registered bins (refused without it)")
    bimp.set_defaults(handler=_import_bins)
    bstats = bcommands.add_parser("stats", help="tags registered, and how many are on a street")
    bstats.set_defaults(handler=_bin_stats)

    for parser in (imp, rematch, listing, stats, locate, aimp, synth, bimp, bstats):
        _database_options(parser)


def open_database(args: argparse.Namespace) -> Engine:
    """The settings' database, brought to the current schema; the settings are left in ``args.settings``."""
    import logging

    if not args.verbose:  # Alembic narrates its plugins and every migration step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from server.command_line import DatabaseUnavailable, migrated_engine
    from server.config import ConfigError, load_settings

    try:
        settings = args.settings = load_settings(args.config, overrides_source="command line",
                                                 database_url=args.database_url)
        settings.make_command_folders()
        return migrated_engine(settings.db_url)
    except (ConfigError, DatabaseUnavailable) as error:
        raise CliError(str(error)) from None


def input_file(path: Path) -> None:
    """A mistyped import file stops before the database is opened: a fresh install's first mistake made and
    migrated ./trivue-data/trivue.db before "no such file"."""
    if path.is_dir():
        raise CliError(f"{path}: not a file")
    if not path.exists():
        raise CliError(f"{path}: no such file")


def _import_streets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from server.streets.importer import import_street_file
    from server.streets.insee import RULE, code_insee
    from server.streets.osm import StreetFileError

    insee = None
    if args.insee is not None:  # checked before the database is opened, as every bad option
        insee = code_insee(args.insee)
        if insee is None:
            raise CliError(f"--insee {args.insee!r}: {RULE}")
        if not args.commune:
            raise CliError(f"--insee {insee} names one commune: give its name with --commune")
    input_file(args.file)
    engine = open_database(args)
    started = time.perf_counter()
    with Console(stderr=True).status(f"reading {args.file}"), Session(engine) as session:
        try:
            report = import_street_file(session, args.file, args.commune, insee)
        except StreetFileError as error:
            raise CliError(str(error)) from None
        session.commit()
        lifts_stored = _lifts_stored(session)
    print(f"{args.file}: {report.ways} ways -> {report.segments} segments, "
          f"{report.streets_added} streets added, {report.streets_updated} updated, "
          f"{report.streets_removed} removed, {report.length_km:.1f} km in {', '.join(report.communes)}"
          f"{f' (code INSEE {insee})' if insee else ''}; "
          f"{report.addresses_linked} addresses linked ({time.perf_counter() - started:.1f} s)"
          + f"; {report.outline_m_dropped:.0f} m of outlines on streets dropped" * bool(report.outline_m_dropped))
    if report.features_without_geometry:
        skipped = report.features_without_geometry
        print(f"warning: {skipped} feature{'s' if skipped != 1 else ''} without geometry skipped",
              file=sys.stderr)
    if lifts_stored:
        print("Stored lifts keep their old street until `trivue streets rematch`.")
    return 0


def _import_addresses(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
    from sqlalchemy.orm import Session

    from server.streets.addresses import AddressFileError, import_address_file

    input_file(args.file)
    engine = open_database(args)
    started = time.perf_counter()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), transient=True) as progress, Session(engine) as session:
        task = progress.add_task(f"importing {args.file.name}", total=None)
        try:
            report = import_address_file(session, args.file, args.commune,
                                         lambda done, total: progress.update(task, completed=done, total=total))
        except AddressFileError as error:
            raise CliError(str(error)) from None
        session.commit()
        lifts_stored = _lifts_stored(session)
    links = report.links
    print(f"{args.file}: {report.format} format, {report.rows} rows, {report.imported} addresses imported, "
          f"{report.removed} removed, {report.skipped_no_position} without position skipped "
          f"({time.perf_counter() - started:.1f} s)")
    print(f"linked by name {links.by_name}, by similar name nearby {links.by_similar_name}, "
          f"to the nearest street {links.by_proximity}, unlinked {links.unlinked} "
          f"in {', '.join(report.communes)}")
    linked = links.by_name + links.by_similar_name + links.by_proximity
    if links.unlinked and links.unlinked >= NO_STREETS_SHARE * (linked + links.unlinked):
        # Nearly all unlinked: the communes have no streets yet (addresses imported first), not bad names.
        print(f"{links.unlinked} of {linked + links.unlinked} addresses found no street: import the streets first, "
              f"`trivue streets import FILE --commune NAME` (an .osm.pbf or GeoJSON file) for "
              f"{', '.join(report.communes)}; it links these addresses, kept meanwhile")
    if lifts_stored and (report.imported or report.removed):
        print("Stored lifts keep their old address and street until `trivue streets rematch`.")
    return 0


def _import_bins(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from server.audit import audit
    from server.streets.bins import BinFileError, import_bins, replace_refusal

    input_file(args.file)
    engine = open_database(args)
    started = time.perf_counter()
    with Session(engine) as session:
        try:
            report = import_bins(session, args.file, replace=args.replace)
        except BinFileError as error:
            raise CliError(str(error)) from None
        refusal = replace_refusal(report, args.allow_removals) if args.replace else None
        if refusal:
            session.rollback()  # a cut-off export or the wrong file: the registry stays as it was
            for line in report.errors:
                print(f"  {line}", file=sys.stderr)
            if report.unknown_address:
                print("Import the addresses first (trivue addresses import), then this file again.", file=sys.stderr)
            raise CliError(f"{args.file}: {refusal}")
        # The registry ties each bin to a household's address: who changed it, in the audit trail.
        audit(session, "cli", "bins.import", str(args.file)[:256],
              f"{report.rows} rows, {report.added} added, {report.moved} moved, {report.unchanged} unchanged, "
              f"{report.removed} removed, {report.unknown_address} unknown address, replace={args.replace}")
        session.commit()
        lifts_stored = _lifts_stored(session)
    print(f"{args.file}: {report.rows} rows, {report.added} bins added, {report.moved} moved to another "
          f"address, {report.unchanged} unchanged, {report.removed} removed, {report.unknown_address} "
          f"with an address the server does not hold ({time.perf_counter() - started:.1f} s)")
    for line in report.errors:
        print(f"  {line}", file=sys.stderr)
    if report.unknown_address:
        print("Import the addresses first (trivue addresses import), then this file again.", file=sys.stderr)
    if report.rows and not (report.added or report.moved or report.unchanged):
        print(f"trivue bins import: error: {args.file}: no row imported", file=sys.stderr)
        return 1
    if report.added or report.moved or report.removed:
        print("New lifts use the registry at once" + ("; stored lifts keep their street until "
                                                      "`trivue streets rematch`." if lifts_stored else "."))
    return 0


def _lifts_stored(session: Session) -> bool:
    """Whether a re-match hint is true: before the first lift there is nothing to re-match."""
    from sqlalchemy import select

    from server.ingest.models import Lift

    return session.scalar(select(Lift.id).limit(1)) is not None


def _bin_stats(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from server.streets.bins import bin_counts

    with Session(open_database(args)) as session:
        total, placed = bin_counts(session)
    print(f"{total} bins registered, {placed} at an address on a street, {total - placed} unplaced")
    return 0


def _synthesize(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from server.streets.demo_addresses import SyntheticAddressError, synthesize_addresses

    if not (math.isfinite(args.spacing) and args.spacing >= 5):
        raise CliError(f"--spacing {args.spacing:g}: at least 5 metres")
    # French postcodes are five digits; empty (the default) means the labels carry none.
    if args.postcode and not re.fullmatch(r"[0-9]{5}", args.postcode):
        raise CliError(f"--postcode {args.postcode!r}: a French postcode is 5 digits (e.g. 35000)")
    engine = open_database(args)
    with Session(engine) as session:
        try:
            count = synthesize_addresses(session, args.commune, args.spacing, postcode=args.postcode)
        except SyntheticAddressError as error:
            raise CliError(str(error)) from None
        session.commit()
    print(f"{count} synthetic addresses along the streets of {args.commune} (flagged synthetic: not real "
          "households); run `trivue streets rematch` to attach stored lifts to them")
    return 0


def _rematch(args: argparse.Namespace) -> int:
    from rich.progress import Progress
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from server.ingest.tracks import rematch_paths
    from server.streets.addresses import link_addresses
    from server.streets.bins import bin_places
    from server.streets.models import Address
    from server.streets.trajectory import TrackLocator

    engine = open_database(args)
    with Session(engine) as session:
        communes = sorted(session.scalars(select(Address.commune).distinct()))
        links = link_addresses(session, communes)
        locator = TrackLocator.from_session(session)
        with Progress(transient=True) as progress:
            task = progress.add_task("re-matching lifts", total=None)
            report = rematch_paths(session, locator,
                                   lambda done, total: progress.update(task, completed=done, total=total),
                                   bins=bin_places, street_level=not args.settings.household_level)
        session.commit()
    level = "" if args.settings.household_level else " (street level: no bin tag or address kept)"
    print(f"addresses: {links.by_name + links.by_similar_name + links.by_proximity} linked, "
          f"{links.unlinked} unlinked; lifts: {report.lifts} re-matched, {report.matched} on a street, "
          f"{report.unmatched} unmatched, {report.changed} changed{level}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.orm import Session

    from server.streets.importer import street_rows

    if args.limit < 1:
        raise CliError(f"--limit must be 1 or more, got {args.limit}")
    engine = open_database(args)
    with Session(engine) as session:
        try:
            rows = street_rows(session, args.commune, args.name, args.limit)
        except ValueError as error:
            raise CliError(str(error)) from None
    table = Table("id", "name", "commune", "km", "segments", "addresses")
    for row in rows:
        table.add_row(str(row.id), row.name, row.commune, f"{row.length_m / 1000:.2f}",
                      str(row.segments), str(row.addresses))
    Console().print(table)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.orm import Session

    from server.streets.importer import commune_stats

    engine = open_database(args)
    with Session(engine) as session:
        rows = commune_stats(session)
    table = Table("commune", "streets", "segments", "km", "addresses", "linked", "unlinked")
    for row in rows:
        table.add_row(row["commune"], *(str(row[k]) for k in ("streets", "segments")), f"{row['km']:.1f}",
                      *(str(row[k]) for k in ("addresses", "linked", "unlinked")))
    Console().print(table)
    # A table of its own: the one above already fills an 80-column terminal.
    codes = Table("commune", "code INSEE", "streets without a code INSEE")
    for row in rows:
        if row["streets"]:
            codes.add_row(row["commune"], ", ".join(row["insee"]), str(row["without_insee"]))
    Console().print(codes)
    if any(row["without_insee"] for row in rows):  # the open data's code_insee is empty for them
        print("Streets without a code INSEE: import the BAN file again (trivue addresses import), or the "
              "streets with --commune NAME --insee CODE.", file=sys.stderr)
    return 0


def _check_fix(args: argparse.Namespace) -> None:
    """Refuse a fix no GPS can give before opening the database: an impossible position would
    otherwise read as "no street nearby", and a negative distance as an empty network."""
    from server.streets.osm import on_the_globe

    if not on_the_globe(args.lon, args.lat):
        raise CliError(f"position {args.lat:g}, {args.lon:g}: latitude must be within -90..90 and "
                       "longitude within -180..180 (LAT comes first)")
    if not (math.isfinite(args.max_distance) and args.max_distance > 0):
        raise CliError(f"--max-distance {args.max_distance:g}: a positive number of metres")
    if args.accuracy is not None and not (math.isfinite(args.accuracy) and args.accuracy >= 0):
        raise CliError(f"--accuracy {args.accuracy:g}: zero or a positive number of metres")
    # Refused rather than wrapped: 720 is more likely a typo or a wrong unit than two full turns.
    if args.heading is not None and not (0 <= args.heading <= 360):
        raise CliError(f"--heading {args.heading:g}: degrees from 0 to 360 (clockwise from north)")


def _locate(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from server.streets.locator import Locator

    _check_fix(args)
    engine = open_database(args)
    with Session(engine) as session:
        locator = Locator.from_session(session, max_distance_m=args.max_distance)
    match: Any = locator.locate(args.lat, args.lon, args.heading, args.accuracy)
    if match is None:
        print(f"no street within {args.max_distance:g} m (plus GPS accuracy) of {args.lat}, {args.lon}")
        return 1
    print(f"{match.street_name}, {match.commune} (street {match.street_id}, segment {match.segment_id}) "
          f"at {match.distance_m:.1f} m, confidence {match.confidence:.2f}")
    if match.address_id is not None:
        print(f"address: {match.address_label} at {match.address_distance_m:.1f} m "
              f"({match.address_candidates} within GPS uncertainty)"
              + (" [synthetic: not a real household]" if match.address_synthetic else ""))
    return 0
