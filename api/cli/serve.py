"""`dateline serve`: the HTTP API under uvicorn, on the configured store.

The store is opened here once to check it (SQLite migrates itself; PostgreSQL
must be at the head migration) and, with --seed, to load the seeds; it is then
closed, and the server's lifespan opens its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn

from dateline.api.app import create_app
from dateline.api.observability import configure_logging
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit.checkpoints import CheckpointError, load_private_key
from dateline.infrastructure.audit.guards import check_guards
from dateline.infrastructure.audit.roles import role_warnings
from dateline.infrastructure.settings import ConfigurationError, Settings

FACTORY = "dateline.api.app:from_environment"


def command_name() -> str:
    """How this shell reaches the `dateline` command: `dateline` if it is on the PATH,
    else the path it was started by (`.venv/bin/dateline` under `make run`)."""
    started = Path(sys.argv[0])
    if started.name != "dateline":
        return "dateline"  # e.g. python -m api.cli
    on_path = shutil.which("dateline")
    if on_path is not None and Path(on_path).resolve() == started.resolve():
        return "dateline"
    return str(started)


def run(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    settings = Settings()
    app = Dateline(settings)
    try:
        check_guards(app.store)  # a record open to rewrites is not served
        for warning in role_warnings(app.store):
            out(f"warning: {warning} (connect as a service role: see README, Auditing)")
        if settings.audit_key_file is not None:
            try:
                load_private_key(settings.audit_key_file)
            except CheckpointError as error:
                raise ConfigurationError(str(error)) from None
        if args.seed:
            from dateline.seeds.loader import load_seeds

            result = load_seeds(app)
            out(
                f"seeded: {result.cities_registered} cities registered, "
                f"{result.events_written} events written, "
                f"{result.events_already_present} reports already present"
            )
        cities, events = len(app.city_slugs()), app.count_events()
        store = app.store.describe()
    finally:
        app.close()

    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    reads = "public" if settings.public_reads else "need a token (DATELINE_PUBLIC_READS=false)"
    out(f"Dateline API on {url}  (docs: {url}/docs)")
    out(f"the page: {url}/  (map, table, city panels; CSV at {url}/status.csv)")
    out(f"store: {store}: {cities} cities, {events} events; reads {reads}")
    out(f"to write, get a token: {command_name()} tokens create --name you --role reporter")
    workers = args.workers or (1 if settings.store().kind == "sqlite" else os.cpu_count() or 1)
    if workers < 1:
        raise ConfigurationError(f"--workers must be at least 1 (got {workers})")
    if workers > 1:
        out(f"{workers} worker processes")
    configure_logging()
    # One process: the app built here. Several: each worker builds its own, after
    # the fork, from the same DATELINE_* settings.
    target = create_app(settings) if workers == 1 else FACTORY
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers,
        host=args.host,
        port=args.port,
        log_config=None,  # configure_logging's handler, for uvicorn's lines too
        access_log=False,  # api.observability logs each request, with its id
        timeout_graceful_shutdown=10,
        # http and loop "auto": httptools and uvloop (installed with the service),
        # less CPU per request than h11 and asyncio's own loop.
    )
