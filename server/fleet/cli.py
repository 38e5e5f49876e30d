"""``trivue models publish | list | rollout | rollback``: the fleet's models, from the server's host.

The commands write the server's database only; the running server publishes the trucks' retained
configs within ``rollout_check_s`` (``server.fleet.rollout.RolloutTask``). Heavy imports happen
inside the handlers so that ``trivue --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from base.errors import CliError
from server.command_line import add_config_argument, open_database, settings_from, sorting_rules_of

if TYPE_CHECKING:
    from vision.rules import SortingRules

ACTOR = "cli"


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="publish models and roll them out to the fleet").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    publish = models.add_parser("publish", help="register an ONNX model (and the card .md beside it) on the server")
    publish.add_argument("file", type=Path, help="the .onnx file")
    publish.add_argument("--card", type=Path, default=None, help="model card (default: X.md beside X.onnx)")
    add_config_argument(publish)
    publish.set_defaults(handler=publish_model)

    listing = models.add_parser("list", help="published models and the latest rollouts")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    add_config_argument(listing)
    listing.set_defaults(handler=list_models)

    rollout = models.add_parser("rollout", help="canary trucks first, the rest after K clean lifts or --confirm")
    rollout.add_argument("sha", help="sha256 of a published model (or a unique prefix of 8+ characters)")
    how = rollout.add_mutually_exclusive_group(required=True)
    how.add_argument("--canary", type=int, help="number of trucks that get the model first")
    how.add_argument("--confirm", action="store_true", help="the rest of the fleet follows the canaries now")
    rollout.add_argument("--after-lifts", type=int, default=None, metavar="K",
                         help="lifts each canary sends before the rest follow (default: rollout_canary_lifts)")
    add_config_argument(rollout)
    rollout.set_defaults(handler=rollout_model)

    back = models.add_parser("rollback", help="put the previous model back on the latest rollout's trucks")
    add_config_argument(back)
    back.set_defaults(handler=rollback_model)


def publish_model(args: argparse.Namespace) -> int:
    from server.fleet.registry import RegistryError, publish

    settings = settings_from(args)
    rules = sorting_rules_of(settings)  # before anything is published: a bad file stops the command
    with open_database(settings) as session:
        try:
            row = publish(session, settings.data_dir, args.file, ACTOR, args.card)
        except RegistryError as error:
            raise CliError(str(error)) from None
        session.commit()
    print(row.sha256)
    print(f"published {row.name} {row.version}: {len(row.names)} classes, input {row.imgsz[0]}x{row.imgsz[1]}, "
          f"mAP50 {row.metrics.get('map50', 'n/a')}, card {'yes' if row.card else 'none'}", file=sys.stderr)
    warn_of_refusals(row.names, rules)
    return 0


def warn_of_refusals(names: list[str], rules: SortingRules) -> None:
    """One warning per stream whose trucks will refuse a model with these classes: at publishing, and
    again at each rollout, days later maybe, when the trucks are about to get it (a truck may run
    other rules than the server's, so neither is refused)."""
    from server.fleet.registry import streams_without_rules

    for stream, problem in streams_without_rules(names, rules).items():
        print(f"warning: trucks on {stream} with the server's sorting rules ({rules.source}) will refuse it: "
              f"{problem}", file=sys.stderr)


def list_models(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.fleet.models import FleetModel, Rollout
    from server.fleet.registry import model_json
    from server.fleet.stall import rollout_view

    settings = settings_from(args)
    with open_database(settings) as session:
        models = [model_json(m) for m in session.scalars(select(FleetModel).order_by(FleetModel.published_at.desc()))]
        rollouts = [rollout_view(session, settings, r)
                    for r in session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(5))]
    if args.json:
        print(json.dumps({"models": models, "rollouts": rollouts}, indent=1))
        return 0
    if not models:
        print("no model published yet: trivue models publish MODEL.onnx")
    for m in models:
        print(f"{m['sha256'][:12]}  {m['name']} {m['version']}  mAP50 {m['metrics'].get('map50', 'n/a')}  "
              f"published {m['published_at'][:16]} by {m['published_by']}")
    for r in rollouts:
        print(f"rollout {r['id']}: {r['name']} {r['version']} {r['state']}, canary {r['canary']} lifts {r['lifts']}"
              f" / {r['canary_lifts']}" + (f" ({r['reason']})" if r['reason'] else ""))
        if r["stalled"]:
            print(f"  STALLED: canaries {r['stalled_canaries']} not heard from for "
                  f"{r['stall_after_s'] / 3600:g} h (confirm it, or roll it out anew with other canaries)")
    return 0


def rollout_model(args: argparse.Namespace) -> int:
    from server.fleet.liveness import offline
    from server.fleet.models import FleetModel
    from server.fleet.rollout import RolloutError, confirm, start

    settings = settings_from(args)
    rules = sorting_rules_of(settings)  # before the rollout starts, as for publish: a bad file stops it
    with open_database(settings) as session:
        try:
            if args.confirm:
                rollout = confirm(session, settings, args.sha, ACTOR)
            else:
                rollout = start(session, settings, args.sha, args.canary, ACTOR, args.after_lifts)
        except RolloutError as error:
            raise CliError(str(error)) from None
        session.commit()
        if args.confirm:
            print(f"rollout {rollout.id}: the rest of the fleet follows now: {rollout.rest}", file=sys.stderr)
        else:
            print(f"rollout {rollout.id}: canary {rollout.canary} now; {rollout.rest} after "
                  f"{rollout.canary_lifts} lifts each (or `trivue models rollout {args.sha} --confirm`)",
                  file=sys.stderr)
            if silent := offline(session, rollout.canary):
                print(f"warning: too few trucks online: canaries {silent} are offline; the rollout waits for "
                      "their lifts (trivue models list says when it stalls)", file=sys.stderr)
        if model := session.get(FleetModel, rollout.sha256):  # published models are never deleted
            warn_of_refusals(model.names, rules)
    return 0


def rollback_model(args: argparse.Namespace) -> int:
    from server.fleet.rollout import RolloutError, rollback

    with open_database(settings_from(args)) as session:
        try:
            rollout, unknown = rollback(session, ACTOR)
        except RolloutError as error:
            raise CliError(str(error)) from None
        session.commit()
    print(f"rollout {rollout.id} rolled back: the trucks get their previous model within rollout_check_s"
          + (f"; previous model unknown for {', '.join(unknown)} (left as they are)" if unknown else ""),
          file=sys.stderr)
    return 0
