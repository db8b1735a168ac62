"""Who may do what: `Authorization: Bearer <token>`, roles reader < reporter < editor < admin.

Reads are public unless DATELINE_PUBLIC_READS=false; a token that is sent is
always checked, even on a public read. The token's name is the principal:
it becomes `reported_by` / `retracted_by`, never anything from the body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.errors import ApiError
from infrastructure.tokens import Role, TokenStore

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dateline"'}
HOW_TO_GET_ONE = "create one with `dateline tokens create --name NAME --role ROLE`"


class ApiSettings(BaseSettings):
    """The API's own DATELINE_* settings (the store's are in infrastructure.settings)."""

    model_config = SettingsConfigDict(env_prefix="DATELINE_", extra="ignore")

    public_reads: bool = True
    # Comma-separated origins a page on another site may call from. `*` lets any
    # origin read; writes are allowed only from origins named explicitly.
    cors_origins: str = "*"

    def cors_read_origins(self) -> list[str]:
        origins = self.cors_write_origins()
        return ["*"] if "*" in self._origins() else origins

    def cors_write_origins(self) -> list[str]:
        return [o for o in self._origins() if o != "*"]

    def _origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]


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


def authenticate(request: Request) -> Principal | None:
    """The token's principal; None if no Authorization header; 401 if it is bad."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise unauthorized("the Authorization header must be `Bearer <token>`")
    tokens: TokenStore = request.app.state.tokens
    info = tokens.verify(secret.strip())
    if info is None:
        raise unauthorized(f"the token is unknown or revoked; {HOW_TO_GET_ONE}")
    return Principal(info.name, info.role)


def require(role: Role) -> Callable[..., Principal]:
    """A dependency admitting `role` and every role above it (plain def: the token
    lookup touches the store, so it runs in the threadpool)."""

    def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        principal = authenticate(request)
        if principal is None:
            settings: ApiSettings = request.app.state.api_settings
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
