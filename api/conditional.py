"""HTTP caching conventions for every read: ETag, 304, Cache-Control, and HEAD.

`ConditionalGet` wraps the application. For GET and HEAD it runs the request as
a GET, holds the answer, and then:

* keeps the endpoint's own `ETag` (a city's version, which writes take back in
  `If-Match`), or gives the answer one: for data about "now" (no `known_at` in
  the query) a weak tag of the URL, `Accept`, today's date and the read model's
  position, so it stays the same until something is written; otherwise a weak
  tag of the body's bytes;
* answers `304 Not Modified` with no body when `If-None-Match` names that tag;
* adds `Cache-Control`: `immutable` for a year when the answer can never change
  (an explicit `known_at` in the past, and every date asked about in the past),
  a short `max-age` otherwise, `no-store` for /health;
* for HEAD, sends the GET's headers and no body;
* gives every HTML page (the map, Swagger UI, ReDoc) a Content-Security-Policy
  that keeps the browser on this server: nothing is fetched from elsewhere, even
  where a bundled script asks for it (ReDoc's footer logo).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dateline.api.schemas import parse_day, parse_instant

IMMUTABLE = "max-age=31536000, immutable"
SHORT_MAX_AGE = 10  # seconds: answers about "now"
DATE_PARAMETERS = ("as_of", "from", "to")
# Paths whose answers come from the store (the rest: the page, docs and OpenAPI).
DATA_PREFIXES = ("/cities", "/status", "/changes")
# Answers with no ETag of their own, whose "now" tag can be checked before they are made.
TAGGED_BY_POSITION = ("/cities", "/status", "/changes", "/status.csv", "/changes.csv")
SAME_ORIGIN_ONLY = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors *"
)


def parse_tags(header: str) -> list[str]:
    """The entity tags of an If-None-Match header, compared weakly (W/ dropped)."""
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def matches(if_none_match: str, etag: str) -> bool:
    tags = parse_tags(if_none_match)
    return "*" in tags or etag.removeprefix("W/") in tags


def never_changes(query: dict[str, str], now: datetime) -> bool:
    """True when the answer is fixed for good: an explicit known_at in the past
    (the record only grows after it) and every date asked about before today."""
    if "known_at" not in query:
        return False
    try:
        known_at = parse_instant(query["known_at"])
        days: list[date] = [parse_day(query[p]) for p in DATE_PARAMETERS if p in query]
    except ValueError:
        return False
    return bool(known_at < now and all(day < now.date() for day in days))


class ConditionalGet:
    """ETag, If-None-Match, Cache-Control and HEAD for every GET (see module doc).

    `now` gives the app's clock and `position` the read model's position; both are
    looked up through the app's state when the request comes, so the store can open
    in the lifespan. `public` says whether reads need no token (Cache-Control public)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        now: Callable[[Scope], datetime],
        position: Callable[[Scope], int],
        public: Callable[[Scope], bool],
    ) -> None:
        self.app = app
        self.now = now
        self.position = position
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        start: Message = {}
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        # Read before the answer is made: a write in between makes the tag older than
        # the body, never newer, so a 304 can never stand for a body the client lacks.
        query = query_of(scope)
        position = None
        # Only the answers tagged by the read model's position need it: the others
        # (one city, its status, timeline, events) carry their own ETag.
        if scope["path"] in TAGGED_BY_POSITION and is_about_now(scope, query):
            position = await run_in_threadpool(self.position, scope)  # a query: off the loop
            tag = self.now_tag(scope, position)
            if_none_match = request_header(scope, b"if-none-match")
            if (
                if_none_match is not None and self.public(scope) and matches(if_none_match, tag)
            ):  # nothing written since: 304 without making the answer again
                headers = MutableHeaders()
                headers["ETag"] = tag
                headers["Cache-Control"] = f"public, max-age={SHORT_MAX_AGE}"
                if scope["path"] == "/status":
                    headers["Vary"] = "Accept"
                await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
        # The same scope, so what the router marks in it (the route) is seen by
        # the middleware around this one; a HEAD is answered as its GET.
        method, scope["method"] = scope["method"], "GET"
        try:
            await self.app(scope, receive, hold)
        finally:
            scope["method"] = method
        body = b"".join(chunks)
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        status = int(start.get("status", 500))
        if status == 200:
            self.decorate(scope, headers, body, position, query)
            if_none_match = request_header(scope, b"if-none-match")
            if if_none_match is not None and matches(if_none_match, headers["etag"]):
                status, body = 304, b""
                for name in ("content-length", "content-type", "content-encoding"):
                    if name in headers:
                        del headers[name]
        await send({**start, "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": b"" if head else body})

    def now_tag(self, scope: Scope, position: int) -> str:
        """The weak tag of an answer about now: the URL, Accept, today, the read
        model's position. It changes when anything is written (or the day turns)."""
        key = "|".join(
            (
                str(scope["path"]),
                scope.get("query_string", b"").decode("latin-1"),
                request_header(scope, b"accept") or "",
                self.now(scope).date().isoformat(),
                str(position),
            )
        )
        return f'W/"{hashlib.sha256(key.encode()).hexdigest()[:20]}"'

    def decorate(
        self,
        scope: Scope,
        headers: MutableHeaders,
        body: bytes,
        position: int | None,
        query: dict[str, str],
    ) -> None:
        path: str = scope["path"]
        is_data = path.startswith(DATA_PREFIXES)
        if headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", SAME_ORIGIN_ONLY)
        if "etag" not in headers:
            if position is not None:
                headers["ETag"] = self.now_tag(scope, position)
            else:
                headers["ETag"] = f'W/"{hashlib.sha256(body).hexdigest()[:20]}"'
        if "cache-control" in headers:
            return
        if path == "/health":
            headers["Cache-Control"] = "no-store"
            return
        scope_word = "public" if self.public(scope) else "private"
        if is_data and never_changes(query, self.now(scope)):
            headers["Cache-Control"] = f"{scope_word}, {IMMUTABLE}"
        else:
            headers["Cache-Control"] = f"{scope_word}, max-age={SHORT_MAX_AGE}"


def query_of(scope: Scope) -> dict[str, str]:
    """The request's query parameters (the last of a repeated name), parsed once."""
    raw = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}


def is_about_now(scope: Scope, query: dict[str, str]) -> bool:
    """A read from the store with no known_at: its answer changes with every write."""
    return str(scope["path"]).startswith(DATA_PREFIXES) and "known_at" not in query


def request_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
