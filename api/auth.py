"""Who may do what: `Authorization: Bearer <token>`, roles reader < reporter < editor < admin.

Reads are public unless DATELINE_PUBLIC_READS=false; a token that is sent is
always checked, even on a public read. The token's name is the principal:
it becomes `reported_by` / `retracted_by`, never anything from the body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from dateline.api.conditional import request_header
from dateline.api.errors import ApiError
from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import Role, TokenStore

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dateline"'}
HOW_TO_GET_ONE = "create one with `dateline tokens create --name NAME --role ROLE`"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str | None  # None: an anonymous public reader
    role: Role


ANONYMOUS = Principal(None, Role.READER)

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `dateline tokens create --name NAME --role ROLE`.",
)


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers=CHALLENGE)


def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    """The principal of the token `HTTPBearer` read; None if no Authorization header
    was sent; 401 if the header is not `Bearer <token>` or the token is bad."""
    if credentials is None:
        if "authorization" in request.headers:  # sent, but HTTPBearer could not read it
            raise unauthorized("the Authorization header must be `Bearer <token>`")
        return None
    tokens: TokenStore = request.app.state.tokens
    info = tokens.verify(credentials.credentials.strip())
    if info is None:
        raise unauthorized(f"the token is unknown or revoked; {HOW_TO_GET_ONE}")
    return Principal(info.name, info.role)


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting `role` and every role above it. An anonymous public
    read is answered on the event loop; a token is looked up in the store, in the
    threadpool (the lookup blocks)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        principal = None
        if credentials is not None or request_header(request.scope, b"authorization") is not None:
            principal = await run_in_threadpool(authenticate, request, credentials)
        if principal is None:
            settings: Settings = request.app.state.settings
            if role is Role.READER and settings.public_reads:
                return ANONYMOUS
            raise unauthorized(
                f"this needs a {role.value} token: send `Authorization: Bearer <token>`; "
                + HOW_TO_GET_ONE
            )
        if not principal.role.allows(role):
            raise ApiError(
                403,
                f"token {principal.name!r} has role {principal.role.value}; this needs "
                f"{role.value} or above: ask an admin for a {role.value} token",
            )
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


Reader = Annotated[Principal, Depends(require(Role.READER))]
Reporter = Annotated[Principal, Depends(require(Role.REPORTER))]
Editor = Annotated[Principal, Depends(require(Role.EDITOR))]
