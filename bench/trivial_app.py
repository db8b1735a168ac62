"""The baseline server of the read benchmark: a trivial FastAPI endpoint.

`GET /cities/{slug}/status` answers a constant JSON object (the app returns a
dict; FastAPI encodes it) given in BENCH_TRIVIAL_BODY: the benchmark
passes a real status answer, so both servers send a body of the same size. It
is served as `dateline serve` serves the API (`api.cli.serve`): uvicorn, the
same worker count, httptools and uvloop ("auto"), no access log, the same
graceful-shutdown timeout; `python -m bench.trivial_app --port P --workers N`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

BODY_VARIABLE = "BENCH_TRIVIAL_BODY"


def create() -> FastAPI:
    body: dict[str, Any] = json.loads(os.environ.get(BODY_VARIABLE) or "{}")
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/cities/{slug}/status")
    async def status(slug: str) -> dict[str, Any]:
        return body

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trivial_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # The keyword arguments of api.cli.serve's uvicorn.run, with this app.
    uvicorn.run(
        "bench.trivial_app:create",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
