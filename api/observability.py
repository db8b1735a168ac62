"""Logs of `dateline serve`: one line per record, each with the request id it served.

`configure_logging()` runs once, when the server starts. On a terminal the
lines are for people (`12:00:01 INFO api.access [3f2c...] GET /cities 200 4.1 ms`);
anywhere else (a container, a file, a pipe) they are JSON objects, one per line,
for a log collector. `RequestIds` gives every HTTP request an id: the caller's
`X-Request-ID` if it sends a usable one, else a new one; it is echoed in the
answer's `X-Request-ID` and set on every line logged while the request runs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO
from uuid import uuid4

from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
from fastapi import FastAPI
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dateline.api import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller may send as its own id: printable, no spaces, bounded.
USABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
NO_REQUEST = "-"
READABLE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s"


class RequestIdFilter(CorrelationIdFilter):
    """Sets `record.request_id`: the id of the request being served, or "-"."""

    def __init__(self) -> None:
        super().__init__(default_value=NO_REQUEST)

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        record.request_id = record.__dict__.pop("correlation_id", NO_REQUEST)
        return True


def formatter_for(stream: TextIO) -> logging.Formatter:
    if stream.isatty():
        return logging.Formatter(READABLE_FORMAT, datefmt="%H:%M:%S")
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's ANSI copy
        timestamp=True,
    )


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every logger's records (uvicorn's included) to `stream` (default stderr),
    as JSON lines unless it is a terminal. Replaces whatever was configured before."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(stream))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration check
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def usable_request_id(value: str) -> bool:
    return bool(USABLE_REQUEST_ID.match(value))


access_log = logging.getLogger("api.access")


class ObserveRequests:
    """Times each HTTP request, counts it in the metrics by route template, and
    logs one access line (method, path, route, status, milliseconds)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception escapes to the server's 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = metrics.route_of(scope)
            metrics.observe(scope["method"], route, status, seconds)
            access_log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )


def install_observability(api: FastAPI) -> None:
    """Request ids (outermost, so every line of a request carries its id), request
    metrics and the access log, and GET /metrics."""
    api.add_middleware(ObserveRequests)
    api.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        generator=lambda: uuid4().hex,
        validator=usable_request_id,
    )
    api.include_router(metrics.router)
