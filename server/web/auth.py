"""Who may see what: users (argon2 passwords), API tokens, login sessions, roles and the audit trail.

Roles grow in rights: ``viewer`` sees street-level statistics, ``manager`` also household-level
data (lifts with addresses, bin ids, photos), ``admin`` also manages trucks. A ``truck`` token stands
outside that ladder: it belongs to one truck, which may download models and read its own config
with it, and nothing else (``server.fleet.api``). Tokens and session
keys are 256-bit random strings, so a SHA-256 of them is enough to store (argon2's slowness
protects guessable passwords, not random keys).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from base.ids import is_truck_id
from server.audit import audit
from server.db import utcnow
from server.streets.insee import RULE, code_insee
from server.web.accounts import ROLES, TRUCK_ROLE, ApiToken, LoginSession, User

log = logging.getLogger(__name__)

TOKEN_PREFIX = "trv_"
MIN_PASSWORD_LENGTH = 10
# What POST /api/login accepts: a longer password could be set here but never typed there.
MAX_PASSWORD_LENGTH = 1024
_hasher = PasswordHasher()
# Verified against when the user does not exist, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AuthError(ValueError):
    """A refused account operation (duplicate user, weak password, unknown role)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    name: str
    role: str
    kind: str  # "user", "token" or "dev"
    truck_id: str | None = None  # set for a truck's token (role "truck") only
    # A mairie's account: the codes INSEE it is limited to (``server.web.commune_scope``); None: all.
    communes: tuple[str, ...] | None = None

    def can(self, role: str) -> bool:
        """At least ``role`` on the ladder viewer < manager < admin; a truck is on no rung."""
        if self.role not in ROLES:
            return False
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()



def check_name(name: str, what: str = "user name") -> str:
    if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
        raise AuthError(f"invalid {what} {name!r}: 1 to 64 printable characters, no outer spaces")
    return name


def name_key(name: str) -> str:
    """What two names must not share: 'Alice', 'alice' and 'ＡＬＩＣＥ' (full width) read as one name
    in the audit log, and the login throttle (``server.web.throttle``) counts failures per name key,
    so guesses spread over 'Alice' and 'alice' count against one account."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_password_policy(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters (what the login accepts)")
    return password


def check_communes(codes: Iterable[str]) -> list[str]:
    """The codes INSEE of a scoped account as the COG writes them, sorted, each once; an empty
    scope is refused (an account that should see nothing is disabled instead)."""
    found = set()
    for typed in codes:
        code = code_insee(typed)
        if code is None:
            raise AuthError(f"invalid code INSEE {typed!r}: {RULE} (Orléans is 45234)")
        found.add(code)
    if not found:
        raise AuthError("--communes: no code INSEE given; leave --communes out for an account or a token that "
                        "sees every commune")
    return sorted(found)


def scope_words(communes: list[str] | None) -> str:
    """A scope as the audit trail and ``trivue users list`` write it."""
    return "all" if communes is None else ",".join(communes)


def add_user(session: Session, name: str, password: str, role: str, communes: Iterable[str] | None = None) -> User:
    """Create a user, limited to ``communes`` (codes INSEE) when given; the caller commits."""
    _check_role(role)
    scope = None if communes is None else check_communes(communes)
    check_name(name)
    check_password_policy(password)
    key = name_key(name)
    # Few accounts: comparing in Python keeps one rule for SQLite and PostgreSQL collations.
    for existing in session.scalars(select(User.name)):
        if name_key(existing) == key:
            raise AuthError(f"user {existing!r} already exists" if existing == name else
                            f"user name {name!r} is too close to the existing {existing!r} (case or width only)")
    user = User(name=name, password_hash=_hasher.hash(password), role=role, created_at=utcnow(), communes=scope)
    session.add(user)
    audit(session, "cli", "user.add", name, f"role={role}" + (f" communes={scope_words(scope)}" if scope else ""))
    return user


def find_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AuthError(f"no user {name!r}")
    return user


def end_sessions(session: Session, user: User) -> int:
    """Delete the user's browser sessions: a stolen cookie dies with a password change or a disable."""
    result = session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return result.rowcount or 0


def set_password(session: Session, name: str, password: str) -> User:
    """A new password; the user's open sessions end (the caller commits)."""
    user = find_user(session, name)
    user.password_hash = _hasher.hash(check_password_policy(password))
    ended = end_sessions(session, user)
    audit(session, "cli", "user.password", name, f"{ended} sessions ended")
    return user


def set_disabled(session: Session, name: str, disabled: bool) -> User:
    """Disable (its open sessions end, its password stops working) or enable a user again."""
    user = find_user(session, name)
    user.disabled = disabled
    ended = end_sessions(session, user) if disabled else 0
    audit(session, "cli", "user.disable" if disabled else "user.enable", name,
          f"{ended} sessions ended" if disabled else None)
    return user


def set_role(session: Session, name: str, role: str) -> User:
    """A new role, which open sessions get at their next request (each reads the user's row)."""
    user = find_user(session, name)
    before, user.role = user.role, _check_role(role)
    audit(session, "cli", "user.role", name, f"{before} -> {role}")
    return user


def set_communes(session: Session, name: str, communes: Iterable[str] | None) -> User:
    """Limit a user to ``communes`` (codes INSEE), or None: every commune again. Open sessions get the
    new scope at their next request, as a new role (each reads the user's row)."""
    user = find_user(session, name)
    before, user.communes = user.communes, None if communes is None else check_communes(communes)
    audit(session, "cli", "user.communes", name, f"{scope_words(before)} -> {scope_words(user.communes)}")
    return user


def check_password(session: Session, name: str, password: str) -> User | None:
    """The enabled user with this name and password, or None; upgrades outdated hashes."""
    user = session.scalar(select(User).where(User.name == name))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def create_token(session: Session, role: str, name: str, truck_id: str | None = None,
                 communes: Iterable[str] | None = None) -> str:
    """Create an API token and return it; only its hash is stored, so it cannot be shown again.

    A ``truck`` token needs the truck's id, and only a truck token has one. Any other token may be
    limited to ``communes`` (codes INSEE, checked as an account's): a mairie's integration.
    """
    if role == TRUCK_ROLE:
        if truck_id is None:  # said as the missing option, not as "got None"
            raise AuthError("--role truck needs --truck-id: the truck the token is for (e.g. --truck-id benne-07)")
        if not is_truck_id(truck_id):
            raise AuthError(f"a truck token needs a valid --truck-id (letters, digits, _ . -), got {truck_id!r}")
        # A truck reads its own config and models, no commune's figures: a scope would mean nothing
        # (and no account is a truck, so none has one either).
        if communes is not None:
            raise AuthError("--communes is not for truck tokens: a truck's token sees only its own truck")
    else:
        _check_role(role)
        if truck_id is not None:
            raise AuthError(f"--truck-id is for truck tokens only, not for role {role!r}")
    scope = None if communes is None else check_communes(communes)
    check_name(name, "token name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=digest(token), prefix=token[:10], role=role, truck_id=truck_id,
                         created_at=utcnow(), communes=scope))
    audit(session, "cli", "token.create", name, f"role={role}" + (f" truck={truck_id}" if truck_id else "")
          + (f" communes={scope_words(scope)}" if scope else ""))
    return token


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AuthError(f"no token with id {token_id}")
    if token.revoked_at is not None:  # keep the first date: it bounds what the token could do
        raise AuthError(f"token {token_id} '{token.name}' was already revoked at "
                        f"{token.revoked_at.isoformat(timespec='seconds')}")
    token.revoked_at = utcnow()
    audit(session, "cli", "token.revoke", token.name)
    return token


def token_principal(session: Session, token: str) -> Principal | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    # One write per minute at most: tokens are used by polling integrations.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        session.commit()
    # As a session's (``session_principal``): an empty list stored by hand is a scope of no commune.
    return Principal(row.name, row.role, "token", row.truck_id if row.role == TRUCK_ROLE else None,
                     communes=None if row.communes is None else tuple(row.communes))


def open_session(session: Session, user: User, hours: int) -> tuple[str, datetime]:
    """Start a login session for ``user``; returns the cookie value and its expiry."""
    key = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(hours=hours)
    session.add(LoginSession(key_hash=digest(key), user_id=user.id, created_at=utcnow(), expires_at=expires))
    user.last_login_at = utcnow()
    audit(session, f"user:{user.name}", "login")
    return key, expires


def session_principal(session: Session, key: str) -> Principal | None:
    row = session.get(LoginSession, digest(key))
    if row is None or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    # An empty list stored by hand is a scope of no commune, not the whole territory (deny by default).
    return Principal(user.name, user.role, "user", communes=None if user.communes is None else tuple(user.communes))


def close_session(session: Session, key: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.key_hash == digest(key)))


def purge_sessions(session: Session) -> int:
    result = session.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
    return result.rowcount or 0
