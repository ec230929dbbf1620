"""`aitrader token ...`: a token is printed once, works against the API, and can be revoked."""

from __future__ import annotations

from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from db.queries.tokens import token_for_secret
from models.enums import Role
from models.ops import AuditEvent
from models.users import ApiToken
from tests.conftest import Run


def test_a_created_token_is_shown_once_stored_hashed_and_revocable(
    aitrader: Run, sample_db: str
) -> None:
    code, out = aitrader("token", "create", "--role", "trader", "--user", "ann", "--name", "ci")
    assert code == 0, out
    secret = next(line for line in out.splitlines() if line.startswith("ait_"))
    sessions = make_session_factory(engine := make_engine(sample_db))
    with sessions() as session:
        found = token_for_secret(session, secret)
        assert found is not None
        token, user = found
        assert (user.username, token.role, token.name) == ("ann", Role.TRADER, "ci")
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert secret not in stored  # only its hash is kept
        assert token.prefix == secret[:12]
    code, out = aitrader("token", "list")
    assert code == 0
    assert "ann" in out
    assert "active" in out
    assert secret not in out
    code, out = aitrader("token", "revoke", str(token.id))
    assert code == 0, out
    with sessions() as session:
        assert token_for_secret(session, secret) is None
        events = session.scalars(
            select(AuditEvent.event).where(AuditEvent.entity_type == "api_token")
        )
        assert list(events) == ["token.created", "token.revoked"]
    code, out = aitrader("token", "revoke", "999")
    assert code == 1
    assert "no API token 999" in out
    code, out = aitrader("token", "create", "--role", "superuser")
    assert code == 2
    engine.dispose()
