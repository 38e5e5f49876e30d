"""``trivue dataset export`` and ``trivue dataset import``: field photos out to a YOLO/COCO dataset,
labels back from Label Studio or CVAT. Heavy imports stay inside the handlers."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from base.errors import CliError
from server.command_line import add_config_argument, day_argument, open_database, settings_from, sorting_rules_of


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("dataset", help="labelled field photos: export a dataset, import labels")
    actions = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="labelled photos as a YOLO or COCO dataset (admin, audited)")
    export.add_argument("--since", type=day_argument, required=True, help="first collection day (YYYY-MM-DD)")
    export.add_argument("--until", type=day_argument, required=True, help="last collection day, included")
    export.add_argument("--out", type=Path, required=True, help="new or empty folder")
    export.add_argument("--format", choices=("yolo", "coco"), default="yolo", help="dataset layout (default yolo)")
    imp = actions.add_parser("import", help="labels from Label Studio or CVAT (YOLO 1.1 zip/folder, COCO JSON)")
    imp.add_argument("file", type=Path, help="the labelling tool's export: YOLO 1.1 zip or folder, or COCO JSON")
    imp.add_argument("--relabel-unusable", action="store_true",
                     help="also import the labels of photos a person marked unusable, which become done "
                          "(by default they stay unusable and the summary lists them)")
    imp.add_argument("--force", action="store_true",
                     help="also replace the boxes of photos a person changed in the dashboard after the export the "
                          "file answers (by default they are left as they are and the summary lists them)")
    for parser in (export, imp):
        parser.add_argument("--as", dest="user", default=None,
                            help="the dashboard account acting, for the rights and the audit log (default: login name)")
        add_config_argument(parser)
    export.set_defaults(handler=export_dataset)
    imp.set_defaults(handler=import_labels)


def _actor(session: object, name: str | None, role: str) -> str:
    """The account acting: it must exist, be enabled and hold ``role`` (exports need admin)."""
    from sqlalchemy import select

    from server.web.accounts import User
    from server.web.auth import Principal

    name = name or getpass.getuser()
    user = session.scalar(select(User).where(User.name == name))  # type: ignore[attr-defined]
    if user is None or user.disabled:
        raise CliError(f"no enabled account {name!r}: pass --as NAME of a dashboard user ({role} or above)")
    if not Principal(user.name, user.role, "user").can(role):
        raise CliError(f"{name!r} is {user.role}: this needs the {role} role or above")
    return f"cli:{user.name}"


def export_dataset(args: argparse.Namespace) -> int:
    from server.ingest.evidence import EvidenceStore
    from server.labels.dataset import DatasetError, export

    settings = settings_from(args)
    rules = sorting_rules_of(settings)
    with open_database(settings) as session:
        actor = _actor(session, args.user, "admin")
        store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
        try:
            counts = export(session, settings, store, args.since, args.until, args.out, args.format, actor, rules)
        except DatasetError as error:
            session.rollback()
            raise CliError(str(error)) from None
        except OSError as error:
            session.rollback()
            raise CliError(f"{error.filename or args.out}: {error.strerror or error}") from None
        session.commit()
    print(f"{args.out}: {sum(counts.values())} photos "
          f"(train {counts['train']}, val {counts['val']}, test {counts['test']}), {args.format}")
    return 0


def _photos(n: int) -> str:
    return "photo" if n == 1 else "photos"  # "1 photo(s)" read as a form, not a sentence


def import_labels(args: argparse.Namespace) -> int:
    from server.labels.dataset import DatasetError
    from server.labels.interop import import_labels as apply_import

    settings = settings_from(args)
    rules = sorting_rules_of(settings)
    with open_database(settings) as session:
        actor = _actor(session, args.user, "annotator")
        try:
            summary = apply_import(session, args.file, actor, settings.evidence_retention_days,
                                   settings.retention_days, rules, args.relabel_unusable, args.force)
        except DatasetError as error:
            session.rollback()
            raise CliError(str(error)) from None
        except OSError as error:
            session.rollback()
            raise CliError(f"{error.filename or args.file}: {error.strerror or error}") from None
        session.commit()
    print(f"{args.file}: labels of {summary.imported} {_photos(summary.imported)} imported")
    if summary.kept_unusable:
        shown = ", ".join(summary.kept_unusable[:10]) + (", …" if len(summary.kept_unusable) > 10 else "")
        unusable = len(summary.kept_unusable)
        print(f"{args.file}: {unusable} {_photos(unusable)} left unusable, as a person marked them, "
              f"their labels not imported: {shown} (check them on the Annotation page, status filter "
              "\"unusable\"; pass --relabel-unusable to import their labels anyway)")
    if summary.kept_changed:
        shown = ", ".join(str(later) for later in summary.kept_changed[:10])
        shown += ", …" if len(summary.kept_changed) > 10 else ""
        changed = len(summary.kept_changed)
        print(f"{args.file}: {changed} {_photos(changed)} left as they are, changed in the dashboard after "
              f"the export this file answers, their labels not imported: {shown} (check them on the Annotation "
              "page; pass --force to replace their boxes with the file's anyway)")
    return 0
