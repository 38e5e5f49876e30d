"""What every ``trivue reminders`` command shares: one-line refusals, the common options, the context
(settings, database, rules, actor). Heavy imports stay inside the functions (``trivue --help`` is fast).
"""

from __future__ import annotations

import argparse
import errno
import functools
import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from base.errors import CliError

QUIET_LOGGERS = ("alembic", "fontTools", "fpdf", "server.migrate", "server.app")


def language() -> str:
    """The commands' language: ``TRIVUE_LANG`` (en, the default, or fr; ``server.reminders.wording``)."""
    from server.reminders.wording import cli_language

    try:
        return cli_language()
    except ValueError as error:
        raise CliError(str(error)) from None


def say(text: str) -> str:
    """``text`` (French) in the commands' language."""
    from server.reminders.wording import translate

    return translate(text, language())


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One line and exit code 2 for every refusal, never a traceback, in the commands' language; a
    manager's terminal shows warnings and our own output only (``trivue -v`` shows the rest)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return _run(handler, args)
        except CliError as error:
            raise CliError(say(str(error))) from None

    return run


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    import logging

    verbose = getattr(args, "verbose", False)
    if not verbose:  # before the imports below: alembic logs as it loads
        logging.getLogger().setLevel(logging.WARNING)
    for name in QUIET_LOGGERS:  # with -v they follow the root again (one process may run several commands)
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    from server.reminders.campaigns import CampaignError
    from server.reminders.channels import ChannelError
    from server.reminders.config import ReminderConfigError
    from server.reminders.households import HouseholdError
    from server.reminders.letters import LetterError
    from server.reminders.templates import TemplateError

    language()  # an unknown TRIVUE_LANG stops the command before it opens (and migrates) any database
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since and since > (until or date.today() - timedelta(days=1)):
        raise CliError(f"--since {since} est après --until {until or 'hier'} : période vide")
    try:
        return handler(args)
    except (CampaignError, HouseholdError, ReminderConfigError, TemplateError, LetterError,
            ChannelError) as error:
        raise CliError(str(error)) from None
    except UnicodeError as error:
        raise CliError(f"fichier illisible ({error.reason}) : enregistrez-le en UTF-8") from None
    except OSError as error:
        where = f"{error.filename} : " if error.filename else ""
        raise CliError(f"{where}{os_problem(error)}") from None


# The system's own words are English whatever the manager's language: the usual ones, in French.
OS_PROBLEMS = {errno.ENOENT: "fichier ou dossier introuvable", errno.EACCES: "accès refusé",
               errno.EPERM: "accès refusé", errno.EISDIR: "c'est un dossier, pas un fichier",
               errno.ENOTDIR: "un élément du chemin n'est pas un dossier", errno.ENOSPC: "disque plein",
               errno.EROFS: "système de fichiers en lecture seule"}


def os_problem(error: OSError) -> str:
    return OS_PROBLEMS.get(error.errno or 0) or error.strerror or str(error)


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        from server.reminders.wording import cli_language, translate

        try:
            lang = cli_language()
        except ValueError:  # argparse reports this line first; the command then refuses the language
            lang = "en"
        raise argparse.ArgumentTypeError(translate(f"{value!r} n'est pas une date (AAAA-MM-JJ)", lang)) from None


def common_options(parser: argparse.ArgumentParser, rules: bool = True) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="server settings (YAML), as trivue server")
    if rules:
        parser.add_argument("--rules", type=Path, metavar="FILE", help="targeting rules (YAML, see reminders/)")
    parser.add_argument("--by", default=None, help="who acts, for the audit log (default: your login name)")


class CommandContext:
    """Settings, database session, targeting rules (``rules``) and sorting rules of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from sqlalchemy.orm import Session

        from server.reminders.config import ReminderConfigError, load_targeting
        from server.reminders.models import upgrade_reminders
        from server.streets.cli import open_database

        by = args.by or getpass.getuser()
        if len(by) > 64 or not by.isprintable():  # as a user name; the audit log's actor column holds 128
            raise CliError(f"--by {by[:70]!r} : 1 à 64 caractères imprimables")
        args.database_url = None
        self.engine = open_database(args)
        upgrade_reminders(self.engine)
        from server.command_line import sorting_rules_of
        from server.config import load_settings

        self.settings = load_settings(args.config)
        # What the letters print as the local rules, and the categories of deleted boxes: the server's.
        self.sorting_rules = sorting_rules_of(self.settings)
        try:
            self.rules = load_targeting(getattr(args, "rules", None))
            self.rules.check_streams([stream.value for stream in self.sorting_rules.streams])
        except ReminderConfigError as error:
            raise CliError(str(error)) from None
        self.session = Session(self.engine, expire_on_commit=False)
        self.actor = f"cli:{by}"

    @property
    def households(self) -> bool:
        """The server's household-level switch (``server.privacy``): the commands obey it as the API does."""
        return self.settings.household_level

    def require_households(self, what: str) -> None:
        from server.web.privacy import HouseholdLevelOff

        if not self.households:
            raise CliError(str(HouseholdLevelOff(what)))

    def __enter__(self) -> CommandContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()
        self.engine.dispose()


def until_day(args: argparse.Namespace, ctx: CommandContext) -> date:
    from server.localtime import local_today

    return args.until or local_today(ctx.settings.zone) - timedelta(days=1)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar on the terminal's stderr for long work (``progress(done, total)``); nothing when piped."""
    import sys

    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
