"""``trivue users`` and ``trivue tokens``: dashboard accounts and API tokens, audited.

An account can be added, listed, given a new password or role, limited to some communes (a mairie's
agents: ``--communes``, ``users communes``), disabled and enabled again (a disable or a new
password ends its open sessions); a token created (limited to some communes as an account is: a
mairie's integration, ``tokens create --communes``), listed (its id is what ``revoke`` takes) and
revoked. Heavy imports (SQLAlchemy, argon2) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from base.errors import CliError
from server.command_line import add_config_argument, open_database, settings_from

ROLE_CHOICES = ("admin", "manager", "annotator", "viewer")
ROLE_HELP = 'what the user may do (docs/api.md, "Authentication and roles")'
COMMUNES_HELP = ("codes INSEE, or names of communes whose streets or addresses are imported, separated by commas "
                 "(45234,Saran,\"La Chapelle-Saint-Mesmin\": quote a name with spaces; codes may also be separated "
                 "by spaces): the account sees only these communes' streets, figures and photos (docs/api.md, "
                 "\"Commune-scoped accounts\")")


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="manage dashboard users").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    add = users.add_parser("add", help="add a user; the password is read from stdin")
    add.add_argument("name", help="the login name")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES, help=ROLE_HELP)
    add.add_argument("--communes", default=None, metavar="COMMUNES", help=COMMUNES_HELP + "; default: every commune")
    add.set_defaults(handler=add_user)
    listing = users.add_parser("list", help="list users")
    listing.set_defaults(handler=list_users)
    passwd = users.add_parser("passwd", help="set a user's password (read from stdin); ends their sessions")
    passwd.add_argument("name", help="the login name")
    passwd.set_defaults(handler=change_password)
    role = users.add_parser("role", help="change a user's role (open sessions get it at once)")
    role.add_argument("name", help="the login name")
    role.add_argument("role", choices=ROLE_CHOICES, help=ROLE_HELP)
    role.set_defaults(handler=change_role)
    scope = users.add_parser("communes", help="limit a user to some communes, or --all (open sessions get it at once)")
    scope.add_argument("name", help="the login name")
    scope.add_argument("codes", nargs="*", metavar="COMMUNE", help=COMMUNES_HELP)
    scope.add_argument("--all", action="store_true", help="every commune again (the scope lifted)")
    scope.set_defaults(handler=change_communes)
    disable = users.add_parser("disable", help="refuse a user's logins and end their sessions")
    disable.add_argument("name", help="the login name")
    disable.set_defaults(handler=disable_user)
    enable = users.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("name", help="the login name")
    enable.set_defaults(handler=enable_user)
    for parser in (add, listing, passwd, role, scope, disable, enable):
        add_config_argument(parser)

    tokens = subparsers.add_parser("tokens", help="manage API tokens for integrations").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    create = tokens.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=(*ROLE_CHOICES, "truck"),
                        help="truck: one per truck, may only download models and read its own config")
    create.add_argument("--truck-id", default=None, help="the truck a --role truck token belongs to")
    create.add_argument("--name", default=None, help="what the token is for (shown in the audit log; "
                        "default api, or truck:<id>)")
    create.add_argument("--communes", default=None, metavar="COMMUNES",
                        help=COMMUNES_HELP.replace("the account", "the token") + "; default: every commune; "
                        "not for --role truck")
    create.set_defaults(handler=create_token)
    token_list = tokens.add_parser("list", help="list tokens: id, name, role, truck, first characters, communes, use")
    token_list.set_defaults(handler=list_tokens)
    revoke = tokens.add_parser("revoke", help="revoke a token by id (see tokens list)")
    revoke.add_argument("token_id", type=int, metavar="ID", help="the token's id (trivue tokens list)")
    revoke.set_defaults(handler=revoke_token)
    for parser in (create, token_list, revoke):
        add_config_argument(parser)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise CliError("the two passwords differ")
        return first
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("no password on stdin (pipe it in, or run in a terminal to be asked)")
    return password


def _change(args: argparse.Namespace, change: Callable[[Any], Any]) -> Any:
    """Run ``change(session)`` and commit; a refused change (AuthError, a commune's name that gives
    no one code) is one line, exit 2, and nothing is committed."""
    from server.streets.commune_codes import CommuneNameError
    from server.web.auth import AuthError

    with open_database(settings_from(args)) as session:
        try:
            result = change(session)
        except (AuthError, CommuneNameError) as error:
            raise CliError(str(error)) from None
        session.commit()
    return result


def _entries(typed: list[str]) -> list[str]:
    """Communes as typed on a command line: ``45234,Saran``, ``45234 45284``, ``Saint Jean de Braye``.
    Commas separate communes; so do spaces between codes, but the words of a name stay one name."""
    from server.streets.commune_codes import is_code

    entries: list[str] = []
    for piece in (piece for text in typed for piece in text.split(",")):
        name: list[str] = []
        for word in piece.split():
            if is_code(word):
                entries += [" ".join(name)] if name else []
                entries.append(word)
                name = []
            else:
                name.append(word)
        entries += [" ".join(name)] if name else []
    return entries


def _codes(session: Any, typed: list[str]) -> list[str]:
    """The communes typed, names turned into their codes INSEE (``server.streets.commune_codes``)."""
    from server.streets.commune_codes import codes_of

    return codes_of(session, _entries(typed))


def _scope(communes: list[str] | None) -> str:
    """A scope as ``users list`` and ``tokens list`` show it."""
    return "all communes" if communes is None else f"communes {','.join(communes)}"


def _named(session: Any, communes: list[str] | None) -> str:
    """``45169 (Ingré), 45302 (Saran)``: the codes stored, each with its name when the imports give one."""
    from server.streets.commune_codes import names_of

    names = names_of(session, communes or [])
    return ", ".join(f"{code} ({names[code]})" if code in names else code for code in communes or [])


def _limited(named: str) -> str:
    """The end of a creation's sentence: ``user ... added with role viewer, limited to the communes ...``."""
    return f", limited to the communes {named}" if named else ""


def _streetless(session: Any, user: Any) -> Any:
    """Warn of a code INSEE no street carries yet (a typo, or streets imported without codes): the
    account (or token: ``user`` is either row) sees nothing of that commune until one does. Returns ``user``."""
    from sqlalchemy import select

    from server.streets.models import Street

    codes = user.communes or []
    known = set(session.scalars(select(Street.code_insee).where(Street.code_insee.in_(codes)).distinct()))
    for code in codes:
        if code not in known:
            print(f"warning: no street has the code INSEE {code} yet: {user.name} sees nothing of that commune "
                  "until its streets carry it (`trivue streets stats`)", file=sys.stderr)
    return user


def add_user(args: argparse.Namespace) -> int:
    from server.web.auth import add_user as create

    password = _read_password()

    def added(session: Any) -> str:
        communes = None if args.communes is None else _codes(session, [args.communes])
        user = _streetless(session, create(session, args.name, password, args.role, communes))
        return _named(session, user.communes)

    named = _change(args, added)
    print(f"user {args.name} added with role {args.role}{_limited(named)}", file=sys.stderr)
    return 0


def change_communes(args: argparse.Namespace) -> int:
    from server.web.auth import set_communes

    if args.all == bool(args.codes):
        raise CliError("communes or --all, not both" if args.all else
                       "give the account's communes (codes INSEE or names), or --all")

    def limited(session: Any) -> str:
        user = _streetless(session, set_communes(session, args.name, None if args.all else _codes(session, args.codes)))
        return "every commune" if user.communes is None else f"the communes {_named(session, user.communes)} only"

    scope = _change(args, limited)
    print(f"{args.name} now sees {scope}", file=sys.stderr)
    return 0


def change_password(args: argparse.Namespace) -> int:
    from server.web.auth import set_password

    password = _read_password()
    _change(args, lambda session: set_password(session, args.name, password))
    print(f"password of {args.name} changed; their open sessions are ended", file=sys.stderr)
    return 0


def change_role(args: argparse.Namespace) -> int:
    from server.web.auth import set_role

    _change(args, lambda session: set_role(session, args.name, args.role))
    print(f"{args.name} is now {args.role}", file=sys.stderr)
    return 0


def disable_user(args: argparse.Namespace) -> int:
    from server.web.auth import set_disabled

    _change(args, lambda session: set_disabled(session, args.name, True))
    print(f"{args.name} disabled; their open sessions are ended", file=sys.stderr)
    return 0


def enable_user(args: argparse.Namespace) -> int:
    from server.web.auth import set_disabled

    _change(args, lambda session: set_disabled(session, args.name, False))
    print(f"{args.name} enabled", file=sys.stderr)
    return 0


def list_users(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.web.accounts import User
    from server.web.auth import name_key

    alike: dict[str, list[str]] = {}
    with open_database(settings_from(args)) as session:
        for user in session.scalars(select(User).order_by(User.name)):
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
            print(f"{user.name}\t{user.role}\t{'disabled' if user.disabled else 'active'}\tlast login {last}\t"
                  f"{_scope(user.communes)}")
            alike.setdefault(name_key(user.name), []).append(user.name)
    # Names added before look-alikes were refused ('Alice' and 'alice'): one person to the audit
    # log and the login throttle. Said here, for an admin to disable or rename one of them.
    for names in alike.values():
        if len(names) > 1:
            print(f"warning: {', '.join(repr(n) for n in names)} differ only by case or width: the audit log "
                  "cannot tell them apart; disable one (`trivue users disable NAME`)", file=sys.stderr)
    return 0


def create_token(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.web.accounts import ApiToken
    from server.web.auth import create_token as create
    from server.web.auth import digest

    if args.name is not None and not args.name.strip():
        raise CliError("--name: empty; say what the token is for, or leave --name out")
    # The default name of a truck's token may pass 64 characters with a long truck id; a given one is checked.
    name = args.name or (f"truck:{args.truck_id}" if args.role == "truck" else "api")[:64]

    def made(session: Any) -> tuple[str, str]:
        # A truck's token takes no communes: said first, before any name is looked up.
        typed = None if args.communes is None else [args.communes]
        communes = typed and (_entries(typed) if args.role == "truck" else _codes(session, typed))
        token = create(session, args.role, name, args.truck_id, communes)
        session.flush()
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
        return token, _named(session, _streetless(session, row).communes)

    token, named = _change(args, made)
    print(token)
    print(f"token '{name}' ({args.role}){_limited(named)} created: it is shown only this once (revoke it with "
          f"`trivue tokens revoke ID`, ID from `trivue tokens list`)", file=sys.stderr)
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    """One line per token, never the token itself (only its hash is kept): its first characters
    tell which file or setting holds it."""
    from sqlalchemy import select

    from server.web.accounts import ApiToken

    def when(at: Any) -> str:
        return at.isoformat(timespec="seconds") if at else "never"

    with open_database(settings_from(args)) as session:
        for token in session.scalars(select(ApiToken).order_by(ApiToken.id)):
            state = f"revoked {when(token.revoked_at)}" if token.revoked_at else "active"
            # The scope after the first characters: the columns before it and the state, last, keep their places.
            print(f"{token.id}\t{token.name}\t{token.role}\t{token.truck_id or '-'}\t{token.prefix}...\t"
                  f"{_scope(token.communes)}\tcreated {when(token.created_at)}\tlast used {when(token.last_used_at)}\t"
                  f"{state}")
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    from server.web.auth import revoke_token as revoke

    token = _change(args, lambda session: revoke(session, args.token_id))
    print(f"token {token.id} '{token.name}' revoked", file=sys.stderr)
    return 0
