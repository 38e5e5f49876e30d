"""What the server's commands share: the ``--config`` option, the settings it names, the database.

Heavy imports (SQLAlchemy, Alembic) happen inside the functions so that ``trivue --help`` stays fast.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from base.errors import CliError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from server.config import ServerSettings
    from vision.rules import SortingRules


def day_argument(text: str) -> date:
    """An argparse ``type`` for a day given as YYYY-MM-DD (argparse names the option in its error)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day YYYY-MM-DD, got {text!r}") from None


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="settings YAML (every setting is also TRIVUE_<NAME> in the environment)")


def settings_from(args: argparse.Namespace, **overrides: object) -> ServerSettings:
    from server.config import ConfigError, load_settings

    try:
        return load_settings(args.config, overrides_source="command line", **overrides)
    except ConfigError as error:
        raise CliError(str(error)) from None


def sorting_rules_of(settings: ServerSettings) -> SortingRules:
    """The settings' sorting rules (``sorting_rules``), loaded once for the command; a missing or
    invalid file stops it with one line naming the setting, as ``trivue server``."""
    from server.config import ConfigError

    try:
        return settings.load_sorting_rules()
    except ConfigError as error:
        raise CliError(str(error)) from None


class DatabaseUnavailable(Exception):
    """The settings' database cannot be opened, reached or brought to the newest schema; the message
    names it (password hidden) and says why in one line."""


SUPPORTED_DATABASES = ("sqlite", "postgresql")  # what the migrations and the partitioned store are written for


def migrated_engine(url: str) -> Engine:
    """An engine on ``url``, upgraded to the newest schema (``server.migrate``): what every command
    and the server's start-up use. A URL that cannot be parsed, a database that is down, a file that
    is not a database and one that Alembic cannot migrate all raise ``DatabaseUnavailable``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from server.config import masked_url
    from server.db import make_engine
    from server.migrate import upgrade_database

    example = "sqlite:///path/to/file.db or postgresql://user:password@host/db"
    try:
        parsed = make_url(url)
        shown = masked_url(url)  # as typed; SQLAlchemy's rendering showed an unencoded "@"'s password tail
        if parsed.get_backend_name() not in SUPPORTED_DATABASES:
            raise DatabaseUnavailable(f"database_url: {shown!r}: Trivue stores its data in SQLite or PostgreSQL "
                                      f"({example})")
        engine = make_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as error:  # ImportError: a driver not installed
        raise DatabaseUnavailable(f"database_url: {masked_url(url)!r} is not a database URL ({example}): "
                                  f"{error}") from None
    try:
        upgrade_database(engine)
    except Exception as error:
        # Imported here, once server.migrate has quietened Alembic's logging (its import narrates).
        from alembic.util.exc import CommandError

        if not isinstance(error, SQLAlchemyError | CommandError | OSError):
            raise
        engine.dispose()
        cause = getattr(error, "orig", None) or error  # the driver's words, not SQLAlchemy's wrapping
        lines = str(cause).strip().splitlines() or [type(cause).__name__]
        raise DatabaseUnavailable(f"database {shown} cannot be used: {lines[0]}") from None
    return engine


def open_database(settings: ServerSettings) -> Session:
    """A session on the settings' database, upgraded to the newest schema first; a database that
    cannot be used stops the command with the reason."""
    from sqlalchemy.orm import Session

    from server.config import ConfigError

    try:
        settings.make_command_folders()
        return Session(migrated_engine(settings.db_url), expire_on_commit=False)
    except (ConfigError, DatabaseUnavailable) as error:
        raise CliError(str(error)) from None

