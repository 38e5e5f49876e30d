"""``trivue opendata export``: write the open data package (CSV, GeoJSON, datapackage.json) to a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from base.errors import CliError
from server.command_line import add_config_argument, day_argument, open_database, settings_from

if TYPE_CHECKING:  # imported when the command runs: `trivue --help` does not load the database layer
    from server.opendata.export import OpenDataQuery, Publication

# The query's fields as this command's options: "k: ..." named a field nobody typed.
OPTION_NAMES = {"period": "--period", "k": "--k", "months_k": "--months-k", "since": "--since", "until": "--until",
                "households": "--households"}


def register(subparsers: argparse._SubParsersAction) -> None:
    opendata = subparsers.add_parser("opendata", help="publish street-level figures as open data")
    actions = opendata.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write streets.csv, streets.geojson and datapackage.json")
    export.add_argument("--out", type=Path, required=True, help="folder to write (created if needed)")
    export.add_argument("--period", choices=("month", "year"), default="month", help="one row per street, "
                        "period and stream (default: month)")
    export.add_argument("--since", type=day_argument, default=None,
                        help="first local day (default: the first collected)")
    export.add_argument("--until", type=day_argument, default=None,
                        help="last local day (default: the end of the last complete period)")
    export.add_argument("--k", type=int, default=None,
                        help="leave out cells under this many lifts (default: opendata_min_lifts, 10; at least 5)")
    export.add_argument("--months-k", type=int, default=None,
                        help="with --period year: the k of the monthly export published beside it (a year that "
                             "would give away a month it left out is held back; default: --k, which must then be "
                             "opendata_min_lifts, the months' default)")
    export.add_argument("--households", type=int, default=None,
                        help="leave out every cell of a street with fewer real addresses linked to it (trivue "
                             "addresses import), however many lifts (default: opendata_min_households, 5; at least 3)")
    export.add_argument("--publish-without-addresses", action="store_true", default=None,
                        help="also publish streets with no known address, on --k alone: their households cannot "
                             "be counted (default: opendata_publish_without_addresses, false: left out)")
    add_config_argument(export)
    export.set_defaults(handler=export_opendata)


def export_opendata(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from base.paths import make_folder
    from server.audit import audit
    from server.opendata.export import QueryError, default_query, publication
    from server.opendata.package import write_package

    settings = settings_from(args)
    k = settings.opendata_min_lifts if args.k is None else args.k
    households = settings.opendata_min_households if args.households is None else args.households
    risky = args.publish_without_addresses or settings.opendata_publish_without_addresses
    try:
        query = default_query(datetime.now(settings.zone).date(), args.period, k, args.since, args.until,
                              args.months_k, households, risky)
    except QueryError as error:
        raise CliError(error.named(OPTION_NAMES)) from None
    if args.period == "year" and args.months_k is None and k != settings.opendata_min_lifts:
        # The monthly export beside it is most likely at the default k. Checked against the year's k
        # instead, its published months of 10 or 11 lifts count as left out and make up the "k lifts
        # left out", so a year minus its published months gives away the few really left out.
        raise CliError(f"--k {k} with --period year: say the k of the monthly export published beside it with "
                       f"--months-k (the months' default is opendata_min_lifts, {settings.opendata_min_lifts}); "
                       "a year minus its published months must not give away the months left out")
    make_folder("--out", args.out)  # a path that cannot be a folder stops here, before the database is read
    with open_database(settings) as session:
        pub = publication(session, query)
        if not pub.count:
            # An empty GeoJSON table is no valid Frictionless resource, and there is nothing to upload.
            raise CliError(f"nothing to publish ({args.period}, {query.since or 'first day'} to {query.until}): no "
                           f"street, {args.period} and stream can be published at k = {k} and {households} known "
                           f"addresses ({held_back(pub, query, args)}); nothing written")
        try:
            write_package(pub, query, args.out, datetime.now(UTC))
        except OSError as error:  # disk full, permissions: the package there before, if any, is left whole
            raise CliError(f"--out {args.out}: the package could not be written ({error}); nothing was replaced, "
                           "the files already there are unchanged") from None
        # Every export is in the audit trail (docs/privacy.md), the command's as the API's.
        audit(session, "cli", "opendata.export", str(args.out)[:256],
              f"package, {pub.count} rows, {query}"[:2000])
        session.commit()
    print(f"{pub.count} rows ({args.period}, {query.since or 'first day'} to {query.until}) written to "
          f"{args.out}; {held_back(pub, query, args)}", file=sys.stderr)
    return 0


def held_back(pub: Publication, query: OpenDataQuery, args: argparse.Namespace) -> str:
    """How many cells were left out, by reason: the operator sees what the household rule costs."""
    from server.opendata.export import months_k

    if not query.publish_without_addresses:
        unknown = "opendata_publish_without_addresses: false"
    elif args.publish_without_addresses:
        unknown = "published at your risk: --publish-without-addresses"
    else:
        unknown = "published at your risk: opendata_publish_without_addresses"
    # A year is also held back when, beside the monthly export, it would give away its small months.
    why = f"under {query.k} lifts" + (f", or giving away its months under {months_k(query)}"
                                      if query.period == "year" else "")
    return (f"{pub.suppressed} cells held back: {pub.few_households} on streets of fewer than {query.households} "
            f"known addresses, {pub.no_addresses} on streets without a known address ({unknown}), "
            f"{pub.under_k} {why}")
