"""The HTTP API: `create_app()` builds it; the store opens in the lifespan.

The application (and its connection pool) is built once per process, when the
server starts, i.e. after any fork. Endpoints are plain `def`: the
eventsourcing library is synchronous, so Starlette runs them in its threadpool
and the event loop never blocks on the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api import audit_errors
from api.auth import ApiSettings
from api.errors import MAX_BODY_BYTES, BodySizeLimit, install_error_handlers
from api.queries import make_queries
from api.routers import audit, changes, cities, events, health, status
from api.schemas import StatusFeatureCollection
from infrastructure.application import Clock, Dateline, utc_now
from infrastructure.audit.checkpointer import Checkpointer
from infrastructure.audit.guards import check_guards
from infrastructure.settings import Settings
from infrastructure.tokens import TokenStore

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
"""

TAGS = [
    {"name": "cities", "description": "register cities and read their control"},
    {"name": "events", "description": "a city's log: report and retract control events"},
    {"name": "status", "description": "every city at once, as JSON or GeoJSON"},
    {"name": "changes", "description": "control events across cities over a range of days"},
    {"name": "health", "description": "is the store reachable"},
    {"name": "audit", "description": "the hash-linked log's signed checkpoints"},
]


def create_app(
    settings: Settings | None = None,
    clock: Clock | None = None,
    *,
    api_settings: ApiSettings | None = None,
    migrate: bool | None = None,
) -> FastAPI:
    """The API over the store `settings` names (default: DATELINE_* variables).

    `clock` replaces the wall clock (tests); `migrate` is passed to `Dateline`
    (default: SQLite migrates itself, PostgreSQL must be migrated already)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        def open_store() -> Dateline:
            return Dateline(settings or Settings(), clock=clock or utc_now, migrate=migrate)

        dateline = await run_in_threadpool(open_store)
        try:  # issue 9: refuse to serve a record the database would let be rewritten
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
        tokens = TokenStore(dateline.store, dateline.clock)
        api.state.dateline = dateline
        api.state.tokens = tokens
        api.state.queries = make_queries(dateline)
        api.state.api_settings = api_settings or ApiSettings()
        try:
            yield
        finally:
            if checkpointer is not None:
                await run_in_threadpool(checkpointer.stop)
            await run_in_threadpool(tokens.close)
            await run_in_threadpool(dateline.close)

    api = FastAPI(
        title="Dateline",
        version="0.1.0",
        summary="Event-sourced control of cities: as of any date, as known at any moment.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    install_error_handlers(api)
    audit_errors.install(api)  # issue 9: damage named, never a 500
    api.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    for module in (health, cities, events, status, changes, audit):
        api.include_router(module.router)

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
