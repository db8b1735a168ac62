"""`dateline tokens create | list | revoke`: the API's tokens, only their hashes stored."""

from __future__ import annotations

import argparse
from typing import Any

from dateline.api.cli.render import Emit, UsageError, table
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.tokens import TokenError, TokenInfo, TokenStore


def info_dict(info: TokenInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "role": info.role.value,
        "created_at": info.created_at.isoformat(),
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
        "active": info.active,
    }


def run(args: argparse.Namespace, app: Dateline, emit: Emit) -> None:
    tokens = TokenStore(app.store, app.clock)
    try:
        if args.tokens_command == "create":
            created = tokens.create(args.name, args.role)
            emit(
                {**info_dict(created.info), "token": created.secret},
                created.secret
                if args.quiet
                else f"token {created.info.name!r} ({created.info.role.value}):\n\n"
                f"    {created.secret}\n\n"
                "Store it now: it is not shown again (only its hash is kept).\n"
                f"Use it as: Authorization: Bearer {created.secret}",
            )
        elif args.tokens_command == "list":
            rows = [info_dict(info) for info in tokens.list()]
            text = (
                table(rows, ("name", "role", "created_at", "revoked_at"))
                if rows
                else "no tokens yet: dateline tokens create --name NAME --role ROLE"
            )
            emit(rows, text)
        elif args.tokens_command == "revoke":
            revoked = tokens.revoke(args.name)
            emit(info_dict(revoked), f"revoked token {revoked.name!r} ({revoked.role.value})")
        else:  # argparse allows only the three above
            raise UsageError(f"unknown tokens command {args.tokens_command!r}")
    except TokenError as error:
        raise UsageError(str(error)) from None
    finally:
        tokens.close()
