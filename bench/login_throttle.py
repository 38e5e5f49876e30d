"""What the database login throttle adds to a login attempt, beside the argon2 check it guards.

    .venv/bin/python bench/login_throttle.py [--attempts 500] [--postgres-url postgresql://...]

Times ``LoginThrottle.attempt`` + ``failed`` + the commit (a failed login's throttle work: one row
written and committed, one count over the window, one look-up of the trusted addresses) over
``--attempts`` failures spread over 97 names and ~1,750 addresses, none of them refused, then
``check_password`` with a wrong password (argon2). SQLite in a temporary folder always; the
PostgreSQL database given is migrated and its throttle tables emptied first (use a scratch one).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from server.db import make_engine
from server.migrate import upgrade_database
from server.web.accounts import User
from server.web.auth import add_user, check_password
from server.web.throttle import Attempt, LoginFailure, LoginThrottle, LoginTrusted

ARGON2_CHECKS = 20


def measure(url: str, attempts: int) -> tuple[str, float, float]:
    """(dialect, seconds of throttle per failed attempt, seconds of argon2 per check)."""
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        throttle = LoginThrottle()
        with sessions() as db:
            for table in (LoginFailure, LoginTrusted):
                db.execute(delete(table))
            db.execute(delete(User).where(User.name == "bench-camille"))
            add_user(db, "bench-camille", "correct horse battery", "manager")
            db.commit()
            started = time.perf_counter()
            for i in range(attempts):
                attempt = throttle.attempt(db, f"name{i % 97}", f"10.0.{i % 251}.{i % 7}")
                assert isinstance(attempt, Attempt), "a refusal: spread the attempts wider"
                throttle.failed(db, attempt)
                db.commit()
            per_attempt = (time.perf_counter() - started) / attempts
            started = time.perf_counter()
            for _ in range(ARGON2_CHECKS):
                check_password(db, "bench-camille", "wrong password")
            per_check = (time.perf_counter() - started) / ARGON2_CHECKS
        return engine.dialect.name, per_attempt, per_check
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=500)
    parser.add_argument("--postgres-url", help="a scratch PostgreSQL database (its throttle tables are emptied)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = [f"sqlite:///{folder}/bench.db", *([args.postgres_url] if args.postgres_url else [])]
        for url in urls:
            dialect, per_attempt, per_check = measure(url, args.attempts)
            print(
                f"{dialect}: throttle {per_attempt * 1000:.2f} ms per failed attempt, "
                f"argon2 check {per_check * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
