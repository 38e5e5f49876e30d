"""Login throttle: failed passwords counted in the database, per (name, address), name and address.

Every server process reads and writes the same rows (``trivue server`` workers, API processes
behind a load balancer, docs/deployment.md), and a restart forgets nothing: the old throttle kept
its counts in each process's memory, so N processes allowed N times the guesses and a restart
started afresh.

The limits, each over the last ``window_s`` (15 minutes, sliding):

- 5 failures lock the pair (name, client address): the guesser's address, not the user;
- 10 failures from one address, whatever the names, refuse that address for names it has never
  logged in as (password spraying: one password tried against many accounts);
- 50 failures for one name, from any number of addresses, refuse that name from addresses where it
  has never logged in (distributed guessing).

Trade-off: no limit locks a user out for long from outside. Refusals are not counted, so each lock
ends ``window_s`` after the failures that made it; the per-name and per-address limits spare the
addresses where that user logged in before (up to 8 per name, ``login_trusted``), so a stranger
cannot lock the office out, and an office behind one NAT keeps working while a machine inside it
sprays names. What stays possible is slowing: the pair limit at a shared address (5 guesses at
camille from the office NAT refuse camille there for 15 minutes), as before.

Names are counted by their ``name_key`` (case and width folded) and stored as its SHA-256: a
password typed in the name field does not sit in this table. IPv6 clients are counted by /64
network, which one subscriber usually holds whole.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Index, String, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.audit import audit
from server.db import Base, BigId, UtcDateTime, utcnow
from server.web.auth import digest, name_key

MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 10
USER_MAX_FAILURES = 50
LOCKOUT_S = 15 * 60
TRUSTED_PER_USER = 8
TRUSTED_DAYS = 180  # an address unused this long is a stranger again
PRUNE_EVERY_S = 60.0  # each process deletes expired rows at most this often


class LoginFailure(Base):
    """A failed password (or one being checked: counted before the check, taken back if right)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_name_at", "name_hash", "at"),
        Index("ix_login_failures_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name_hash: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LoginTrusted(Base):
    """An address where this name logged in successfully: the per-name and per-address limits spare it."""

    __tablename__ = "login_trusted"

    name_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


def address_key(address: str) -> str:
    """What the address limits count: an IPv4 address, an IPv6 /64 (one subscriber's whole
    network: counting single IPv6 addresses would give a sprayer 2^64 fresh counts)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # "unknown", a test client's name
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True)
class Attempt:
    """A login let through to its password check; its row already counts as a failure."""

    row_id: int
    name: str
    name_hash: str
    address: str
    pair: int  # failures in the window, this one included
    per_name: int
    per_address: int


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int  # until the oldest failure that makes the lock leaves the window
    limit: str  # "pair", "address" or "name"


class LoginThrottle:
    """The limits above, over the caller's database session (see the module's docstring)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        address_max_failures: int = ADDRESS_MAX_FAILURES,
        user_max_failures: int = USER_MAX_FAILURES,
        window_s: float = LOCKOUT_S,
        clock: Callable[[], datetime] = utcnow,
        prune_every_s: float = PRUNE_EVERY_S,
    ) -> None:
        self.max_failures, self.address_max_failures = max_failures, address_max_failures
        self.user_max_failures, self.window = user_max_failures, timedelta(seconds=window_s)
        self._clock, self.prune_every_s = clock, prune_every_s
        self._pruned = -math.inf
        self._prune_lock, self._judging = threading.Lock(), threading.Lock()

    def attempt(self, db: Session, name: str, address: str) -> Attempt | Refusal:
        """Count the attempt as failed, then judge it: written first and committed, so that attempts
        checked side by side (threads, other processes) each see the others; a burst is then at
        worst refused a little early, never let through beyond the limit. Within one process the
        threads take turns (a lock held for the few statements, not for argon2), so a burst there
        gets exactly the limit checked. A refused attempt's row is taken back (refusals do not
        prolong a lock)."""
        now, key, where = self._clock(), digest(name_key(name)), address_key(address)
        self._prune(db, now)
        with self._judging:
            row = LoginFailure(name_hash=key, address=where, at=now)
            db.add(row)
            db.commit()
            since = now - self.window
            pair, per_name, per_address = db.execute(
                select(
                    func.count().filter((LoginFailure.name_hash == key) & (LoginFailure.address == where)),
                    func.count().filter(LoginFailure.name_hash == key),
                    func.count().filter(LoginFailure.address == where),
                ).where(LoginFailure.at > since, or_(LoginFailure.name_hash == key, LoginFailure.address == where))
            ).one()
            trusted = db.get(LoginTrusted, (key, where)) is not None
            exceeded: list[tuple[str, ColumnElement[bool], int]] = []
            if pair > self.max_failures:
                exceeded.append(
                    ("pair", (LoginFailure.name_hash == key) & (LoginFailure.address == where), self.max_failures)
                )
            if not trusted and per_address > self.address_max_failures:
                exceeded.append(("address", LoginFailure.address == where, self.address_max_failures))
            if not trusted and per_name > self.user_max_failures:
                exceeded.append(("name", LoginFailure.name_hash == key, self.user_max_failures))
            if not exceeded:
                return Attempt(row.id, name, key, where, pair, per_name, per_address)
            db.execute(delete(LoginFailure).where(LoginFailure.id == row.id))
            db.commit()
        wait, limit_name = max(
            (self._wait(db, condition, limit, since, now), limit_name) for limit_name, condition, limit in exceeded
        )
        return Refusal(wait, limit_name)

    def _wait(self, db: Session, condition: ColumnElement[bool], limit: int, since: datetime, now: datetime) -> int:
        """Seconds until fewer than ``limit`` failures under ``condition`` remain in the window: the
        ``limit``-th newest one must leave it."""
        at = db.scalar(
            select(LoginFailure.at)
            .where(condition, LoginFailure.at > since)
            .order_by(LoginFailure.at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        if at is None:  # taken back meanwhile (a success, a prune): try again at once
            return 1
        return max(1, math.ceil((at + self.window - now).total_seconds()))

    def failed(self, db: Session, attempt: Attempt) -> None:
        """The password was wrong: the row stays. The failure that reaches a limit is audited as a
        lock-out (in the caller's transaction); the refusals that follow are not, so a guesser
        hammering a lock adds nothing to the audit log."""
        window_min = round(self.window.total_seconds() / 60)
        reached = [
            (attempt.pair, self.max_failures, f"{attempt.address}: this name refused from this address"),
            (
                attempt.per_address,
                self.address_max_failures,
                f"{attempt.address}: this address refused for names it never logged in as",
            ),
            (attempt.per_name, self.user_max_failures, "this name refused from addresses where it never logged in"),
        ]
        for count, limit, what in reached:
            if count == limit:
                audit(
                    db,
                    "system",
                    "login.locked",
                    attempt.name[:256],
                    f"{limit} failed logins within {window_min} min; {what}",
                )

    def succeeded(self, db: Session, attempt: Attempt) -> None:
        """The password was right: the attempt was no failure, the pair's count starts afresh, and this
        address is trusted for this name (the caller commits, with the session it opens)."""
        db.execute(
            delete(LoginFailure).where(
                (LoginFailure.id == attempt.row_id)
                | ((LoginFailure.name_hash == attempt.name_hash) & (LoginFailure.address == attempt.address))
            )
        )
        now = self._clock()
        values = {"name_hash": attempt.name_hash, "address": attempt.address, "last_at": now}
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        db.execute(
            insert(LoginTrusted)
            .values(values)
            .on_conflict_do_update(index_elements=["name_hash", "address"], set_={"last_at": now})
        )
        kept = (
            select(LoginTrusted.address)
            .where(LoginTrusted.name_hash == attempt.name_hash)
            .order_by(LoginTrusted.last_at.desc())
            .limit(TRUSTED_PER_USER)
        )
        db.execute(
            delete(LoginTrusted).where(LoginTrusted.name_hash == attempt.name_hash, LoginTrusted.address.not_in(kept))
        )

    def _prune(self, db: Session, now: datetime) -> None:
        """Expired failures and long-unused trusted addresses go, so the tables stay small: at most the
        failures of one window (an attacker's, each one an argon2 check) and 8 addresses per name."""
        with self._prune_lock:
            if time.monotonic() - self._pruned < self.prune_every_s:
                return
            self._pruned = time.monotonic()
        db.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window))
        db.execute(delete(LoginTrusted).where(LoginTrusted.last_at <= now - timedelta(days=TRUSTED_DAYS)))
        db.commit()
