"""`dateline serve`: the HTTP API under uvicorn, on the configured store.

The store is opened here once to check it (SQLite migrates itself; PostgreSQL
must be at the head migration) and, with --seed, to load the seeds; it is then
closed, and the server's lifespan opens its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import uvicorn

from api.app import create_app
from api.auth import ApiSettings
from infrastructure.application import Dateline
from infrastructure.audit.checkpoints import CheckpointError, load_private_key
from infrastructure.audit.guards import check_guards
from infrastructure.audit.roles import role_warnings
from infrastructure.settings import ConfigurationError, Settings


def run(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    settings = Settings()
    api_settings = ApiSettings()
    app = Dateline(settings)
    try:
        check_guards(app.store)  # issue 9: a record open to rewrites is not served
        for warning in role_warnings(app.store):
            out(f"warning: {warning} (connect as a service role: see README, Auditing)")
        if settings.audit_key_file is not None:
            try:
                load_private_key(settings.audit_key_file)
            except CheckpointError as error:
                raise ConfigurationError(str(error)) from None
        if args.seed:
            from seeds.loader import load_seeds

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
    reads = "public" if api_settings.public_reads else "need a token (DATELINE_PUBLIC_READS=false)"
    out(f"Dateline API on {url}  (docs: {url}/docs)")
    out(f"store: {store}: {cities} cities, {events} events; reads {reads}")
    out("to write, get a token: dateline tokens create --name you --role reporter")
    uvicorn.run(
        create_app(settings, api_settings=api_settings),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
