"""Who is asking, and may they: bearer tokens, roles, and the anonymous local reader.

Every route but health, metrics and the docs depends on `Require(role)`.
Reads need `viewer`; whatever moves money or starts LLM spend needs
`trader`; halting trading and reading the audit log need `admin`. A
request without a token is refused with 401, except a read from this
machine when `API_ANONYMOUS_READ` is on (the demo): it acts as the viewer
`anonymous`. A token that is unknown, revoked or expired is a 401; a known
token with too small a role is a 403.

`Require` is a class so the route table can be inspected (tests enumerate
every route and the role it needs, so none can slip through unguarded).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from api.state import api_state
from db.engine import unit_of_work
from db.queries.tokens import token_for_secret, touch_token
from models.base import utcnow
from models.enums import Role
from models.errors import AuthenticationError, PermissionDeniedError
from realtime.runtime import Runtime

ANONYMOUS = "anonymous"
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per token

bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `aitrader token create --role viewer|trader|admin`.",
)


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as the audit log records it."""

    actor: str
    role: Role
    token_id: int | None
    request_id: str | None

    def audit(self) -> dict[str, Any]:
        """The who-fields of an audit event (db.queries.audit.record_event)."""
        return {
            "actor": self.actor,
            "token_id": self.token_id,
            "role": str(self.role),
            "request_id": self.request_id,
        }


class Require:
    """A route dependency: the caller, if their role is at least `role`; else 401/403."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        return await authorise(request, credentials.credentials if credentials else None, self.role)


class RequireStream(Require):
    """`Require` for SSE and WebSocket routes, whose browser clients cannot set headers:
    the token may also come as `?access_token=` (the path is logged, the query is not)."""

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        access_token: Annotated[
            str | None,
            Query(
                max_length=200,
                description="The API token, for clients that cannot send an Authorization header.",
            ),
        ] = None,
    ) -> Principal:
        secret = credentials.credentials if credentials else access_token
        return await authorise(request, secret, self.role)


class RequireLLM(Require):
    """`Require(trader)` for routes that start LLM spend, rate-limited per token."""

    def __init__(self) -> None:
        super().__init__(Role.TRADER)

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        principal = await authorise(
            request, credentials.credentials if credentials else None, self.role
        )
        api_state(request).llm_limiter.take(f"token-{principal.token_id}")
        return principal


async def authorise(request: HTTPConnection, secret: str | None, needed: Role) -> Principal:
    runtime: Runtime = request.app.state.runtime
    request_id = getattr(request.state, "request_id", None)
    if not secret:
        if needed is Role.VIEWER and runtime.settings.api_anonymous_read and _local(request):
            return Principal(ANONYMOUS, Role.VIEWER, None, request_id)
        raise AuthenticationError("this needs an API token: Authorization: Bearer <token>")
    found = await asyncio.to_thread(_lookup, runtime, api_state(request).token_touched, secret)
    if found is None:
        raise AuthenticationError("unknown, revoked or expired API token")
    token_id, actor, role = found
    if not role.allows(needed):
        raise PermissionDeniedError(f"this needs the {needed} role; the token has {role}")
    return Principal(actor, role, token_id, request_id)


def _lookup(
    runtime: Runtime, touched: dict[int, float], secret: str
) -> tuple[int, str, Role] | None:
    with runtime.read_sessions() as session:
        found = token_for_secret(session, secret)
        if found is None:
            return None
        token, user = found
        result = token.id, user.username, Role(token.role)
    if time.monotonic() - touched.get(token.id, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
        touched[token.id] = time.monotonic()
        with unit_of_work(runtime.sessions) as session:
            touch_token(session, token.id, utcnow())
    return result


def _local(request: HTTPConnection) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_secret(connection: HTTPConnection) -> str | None:
    """The token of a connection that cannot use the `bearer` dependency (a WebSocket):
    `Authorization: Bearer ...`, else `?access_token=`."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.query_params.get("access_token") or None


Viewer = Annotated[Principal, Depends(Require(Role.VIEWER))]
Trader = Annotated[Principal, Depends(Require(Role.TRADER))]
Admin = Annotated[Principal, Depends(Require(Role.ADMIN))]
LLMSpender = Annotated[Principal, Depends(RequireLLM())]
StreamViewer = Annotated[Principal, Depends(RequireStream(Role.VIEWER))]
