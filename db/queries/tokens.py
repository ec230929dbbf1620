"""API tokens: issued once in clear, stored as a SHA-256, looked up by that hash.

A token is `ait_` and 43 URL-safe characters (256 bits): too long to guess,
so a plain hash (no salt, no slow KDF) is enough, and the lookup is one
indexed equality. The first 12 characters are kept as `prefix` so a list of
tokens can be told apart without revealing any of them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.enums import Role
from models.errors import NotFoundError
from models.users import ApiToken, User

TOKEN_PREFIX = "ait_"  # noqa: S105 (a marker, not a secret)


@dataclass(frozen=True)
class IssuedToken:
    """The one moment the secret exists outside its hash."""

    id: int
    secret: str
    role: Role
    user: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_user(session: Session, username: str, *, is_admin: bool = False) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, is_admin=is_admin)
        session.add(user)
        session.flush()
    return user


def issue_token(
    session: Session,
    username: str,
    role: Role,
    name: str = "",
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new token for `username` (created if needed); its secret is returned, never stored."""
    user = ensure_user(session, username, is_admin=role is Role.ADMIN)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name or f"{role} token",
        token_hash=hash_token(secret),
        prefix=secret[:12],
        role=role,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedToken(id=row.id, secret=secret, role=role, user=user.username)


def token_for_secret(session: Session, secret: str) -> tuple[ApiToken, User] | None:
    """The live token with this secret and its user; None if unknown, revoked or expired."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(secret))
    ).first()
    if row is None:
        return None
    token, user = row
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    return token, user


def list_tokens(session: Session) -> list[tuple[ApiToken, User]]:
    rows = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    )
    return [(t, u) for t, u in rows]


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def touch_token(session: Session, token_id: int, at: datetime) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = at
