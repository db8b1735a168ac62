"""The HTTP API: `create_app()` builds it; the store opens in the lifespan.

The application (and its connection pool) is built once per process, when the
server starts, i.e. after any fork. Endpoints are plain `def`: the
eventsourcing library is synchronous, so Starlette runs them in its threadpool
and the event loop never blocks on the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema
from starlette.types import Scope

from dateline.api import audit_errors
from dateline.api.conditional import ConditionalGet
from dateline.api.cors import SplitCors
from dateline.api.errors import MAX_BODY_BYTES, BodySizeLimit, install_error_handlers
from dateline.api.observability import configure_logging, install_observability
from dateline.api.queries import make_queries
from dateline.api.routers import audit, changes, cities, events, exports, health, page, status
from dateline.api.schemas import StatusFeatureCollection
from dateline.infrastructure.application import Clock, Dateline, utc_now
from dateline.infrastructure.audit.checkpointer import Checkpointer
from dateline.infrastructure.audit.guards import check_guards
from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import TokenStore

DESCRIPTION = """\
Who controlled a city **as of** a date, **as known at** a moment, who says so,
and what was reported at the time.

* Dates are `YYYY-MM-DD`; instants are ISO 8601 with a time zone. `as_of` and
  `known_at` default to now.
* Reads are public unless the server runs with `DATELINE_PUBLIC_READS=false`.
  Writes need `Authorization: Bearer <token>`: reporter to report, editor to
  register cities and retract. Get a token with
  `dateline tokens create --name you --role reporter`.
* City reads and writes carry `ETag: "<version>"`; send it back as `If-Match`
  on a report or retraction to get 412 instead of writing over news you have
  not seen.
* Errors are JSON with a `detail`; 422s list each field (`loc`, `field`, `msg`).
* Every read has an `ETag` (send it as `If-None-Match` for a 304) and
  `Cache-Control`; an answer with a past `as_of` and an explicit past `known_at`
  is immutable. `/cities`, `/changes`, a city's events and its timeline are
  paginated (`limit` up to 1000, `after`, `Link: rel="next"`; the timeline 100 a
  page unless `limit` says otherwise). HEAD works on every GET.
* CSV for spreadsheets and QGIS: `/status.csv`, `/changes.csv`. The page at `/`
  shows it all on a map.
"""

TAGS = [
    {"name": "cities", "description": "register cities and read their control"},
    {"name": "events", "description": "a city's log: report and retract control events"},
    {"name": "status", "description": "every city at once, as JSON or GeoJSON"},
    {"name": "changes", "description": "control events across cities over a range of days"},
    {"name": "health", "description": "is the store reachable"},
    {"name": "exports", "description": "CSV for spreadsheets, Datawrapper and QGIS"},
    {"name": "audit", "description": "the hash-linked log's signed checkpoints"},
]
GZIP_MINIMUM_BYTES = 1000


def app_now(scope: Scope) -> datetime:
    dateline: Dateline = scope["app"].state.dateline
    return dateline.clock()


def read_position(scope: Scope) -> int:
    dateline: Dateline = scope["app"].state.dateline
    return dateline.read_model.position()


def reads_are_public(scope: Scope) -> bool:
    settings: Settings | None = getattr(scope["app"].state, "settings", None)
    return settings is None or settings.public_reads


def create_app(
    settings: Settings | None = None,
    clock: Clock | None = None,
    *,
    migrate: bool | None = None,
) -> FastAPI:
    """The API over the store `settings` names (default: DATELINE_* variables), with
    their public_reads and cors_origins.

    `clock` replaces the wall clock (tests); `migrate` is passed to `Dateline`
    (default: SQLite migrates itself, PostgreSQL must be migrated already)."""
    config = settings or Settings()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        def open_store() -> Dateline:
            return Dateline(config, clock=clock or utc_now, migrate=migrate)

        dateline = await run_in_threadpool(open_store)
        try:  # refuse to serve a record the database would let be rewritten
            await run_in_threadpool(check_guards, dateline.store)
        except Exception:
            await run_in_threadpool(dateline.close)
            raise
        checkpointer = None
        s = dateline.settings
        if s.audit_key_file is not None:
            checkpointer = Checkpointer(
                dateline.store,
                s.audit_key_file,
                s.audit_checkpoint_events,
                s.audit_checkpoint_minutes,
                dateline.clock,
            )
            checkpointer.start()
        api.state.checkpointer = checkpointer
        tokens = TokenStore(
            dateline.store,
            dateline.clock,
            connect_timeout=dateline.settings.postgres_connect_timeout,
        )
        api.state.dateline = dateline
        api.state.tokens = tokens
        api.state.queries = make_queries(dateline)
        try:
            yield
        finally:
            if checkpointer is not None:
                await run_in_threadpool(checkpointer.stop)
            await run_in_threadpool(tokens.close)
            await run_in_threadpool(dateline.close)

    # Swagger UI (/docs) and ReDoc (/redoc) from the fastapi-offline package's files.
    api = FastAPIOffline(
        title="Dateline",
        version="0.1.0",
        summary="Event-sourced control of cities: as of any date, as known at any moment.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    api.state.settings = config
    install_error_handlers(api)
    audit_errors.install(api)  # damage named, never a 500
    api.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    # Outermost last: CORS, then gzip, then ETag/304/Cache-Control/HEAD.
    api.add_middleware(ConditionalGet, now=app_now, position=read_position, public=reads_are_public)
    api.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=6)
    api.add_middleware(
        SplitCors,
        read_origins=config.cors_read_origins(),
        write_origins=config.cors_write_origins(),
    )
    install_observability(api)  # outermost: ids, logs and metrics cover everything
    for module in (health, cities, events, status, changes, exports, page, audit):
        api.include_router(module.router)
    api.mount("/page", StaticFiles(directory=page.PAGE_DIR), name="page")

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                summary=api.summary,
                description=api.description,
                routes=api.routes,
                tags=api.openapi_tags,
            )
            # The GeoJSON answer of GET /status is not a response_model: add its schema.
            _, extra = models_json_schema(
                [(StatusFeatureCollection, "serialization")],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in extra.get("$defs", {}).items():
                components.setdefault(name, definition)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def from_environment() -> FastAPI:
    """The app from DATELINE_* settings alone: what each `dateline serve --workers N`
    process builds (uvicorn's factory)."""
    configure_logging()
    return create_app(Settings())
