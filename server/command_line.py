"""What the server's commands share: the ``--config`` option, the settings it names, the database.

Heavy imports (SQLAlchemy, Alembic) happen inside the functions so that ``trivue --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from base.errors import CliError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.config import ServerSettings


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="settings YAML (every setting is also TRIVUE_<NAME> in the environment)")


def settings_from(args: argparse.Namespace, **overrides: object) -> ServerSettings:
    from server.config import ConfigError, load_settings

    try:
        return load_settings(args.config, **overrides)
    except ConfigError as error:
        raise CliError(str(error)) from None


def open_database(settings: ServerSettings) -> Session:
    """A session on the settings' database, upgraded to the newest schema first."""
    from sqlalchemy.orm import Session

    from server.db import make_engine
    from server.migrate import upgrade_database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    return Session(engine, expire_on_commit=False)
