"""Cross-origin requests: reads from the origins allowed to read, writes only from
origins named explicitly (DATELINE_CORS_ORIGINS; default `*`: anyone may read,
no other site may write).

Two of Starlette's CORS middlewares wrap the same application; each request (or
preflight, by its Access-Control-Request-Method) goes through the one for reads
(GET, HEAD) or the one for writes.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from dateline.api.conditional import request_header

READ_METHODS = ("GET", "HEAD")
EXPOSED = ["ETag", "Link", "Location"]
PREFLIGHT_MAX_AGE = 600


class SplitCors:
    def __init__(self, app: ASGIApp, *, read_origins: list[str], write_origins: list[str]) -> None:
        self.reads = CORSMiddleware(
            app,
            allow_origins=read_origins,
            allow_methods=list(READ_METHODS),
            allow_headers=["Authorization", "If-None-Match"],
            expose_headers=EXPOSED,
            max_age=PREFLIGHT_MAX_AGE,
        )
        self.writes = CORSMiddleware(
            app,
            allow_origins=write_origins,
            allow_methods=[*READ_METHODS, "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
            ],
            expose_headers=EXPOSED,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.reads(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            method = (request_header(scope, b"access-control-request-method") or "").upper()
        handler = self.reads if method in READ_METHODS else self.writes
        await handler(scope, receive, send)
