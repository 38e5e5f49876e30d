"""Accounts' tables: users (argon2 hashes), API tokens and browser login sessions (audit trail: server.audit)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime, utcnow


class Role(StrEnum):
    """Rights grow down the list: a manager can do what a viewer can, an admin what a manager can.

    An annotator labels field photos (the blurred hopper only, docs/privacy.md) and sees what a viewer
    sees; managers and admins may label too. No household-level data (addresses, bins) reaches it.
    """

    viewer = "viewer"
    annotator = "annotator"
    manager = "manager"
    admin = "admin"


ROLES = tuple(Role)  # increasing rights
# A truck's token is outside the ladder: it may download models and read its own config, nothing
# else (not even what a viewer sees), so a token stolen from a truck reveals no statistics.
TRUCK_ROLE = "truck"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256), doc="argon2id")
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # A mairie's account: the codes INSEE of the communes it may see (``server.web.commune_scope``),
    # sorted; None for the whole territory. Never an empty list: an account that sees nothing is disabled.
    communes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class ApiToken(Base):
    """A bearer token for integrations; only its SHA-256 is kept (the token is random, 256 bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), doc="First characters, to recognise a token")
    role: Mapped[str] = mapped_column(String(16))
    truck_id: Mapped[str | None] = mapped_column(String(64), doc="The truck a 'truck' token belongs to")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A mairie's integration (its GIS pulling street figures): the codes INSEE it is limited to, as
    # ``User.communes`` (sorted, never empty); None for the whole territory. Never on a truck's token.
    communes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class LoginSession(Base):
    """A browser session behind the session cookie; the cookie holds a random key, we keep its hash."""

    __tablename__ = "login_sessions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
