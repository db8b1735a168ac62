"""HTTP side of the write-path benchmark: real `dateline serve` processes, one on
the embedded SQLite store and one on PostgreSQL, loaded by `bench.loadgen`
(keep-alive clients in their own process)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import http
from bench.write_path_load import CHALLENGER, CONTROLLER, build_cities
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings

ACTORS = [CONTROLLER, CHALLENGER, "Militia"]


class Served:
    """One store behind one `dateline serve`, with fresh cities for each load
    (a load's cities are left in a state this process does not track)."""

    def __init__(self, name: str, settings: Settings, threads: int, per_thread: int) -> None:
        self.name = name
        self.settings = settings
        self.threads = threads
        self.per_thread = per_thread
        self.base = ""
        self.token = ""
        self.loads = 0

    def prepare(self, loads: int) -> None:
        """Migrate, register every load's cities (before the server owns the store),
        and create a reporter token with `dateline tokens create`."""
        app = Dateline(self.settings, migrate=True)
        try:
            slugs = [
                self.slug(n, i, k)
                for n in range(loads)
                for i in range(self.threads)
                for k in range(self.per_thread)
            ]
            build_cities(app, slugs, 1)
        finally:
            app.close()
        self.token = http.create_token(self.settings)

    def slug(self, load: int, thread: int, k: int) -> str:
        return f"wp-http-{load}-{thread}-{k}"

    def job(self, seconds: float) -> dict[str, Any]:
        n = self.loads
        self.loads += 1
        writers = [
            [
                {
                    "slug": self.slug(n, i, k),
                    "actors": ACTORS,
                    "status": "held",
                    "controller": CONTROLLER,
                    "contested_by": None,
                    "holders": [CONTROLLER],
                }
                for k in range(self.per_thread)
            ]
            for i in range(self.threads)
        ]
        return {
            "base": self.base,
            "threads": self.threads,
            "max_requests": 10_000_000,
            "mode": "append",
            "writers": writers,
            "token": self.token,
            "seconds": seconds,
        }

    def run(self, seconds: float) -> dict[str, Any]:
        result = http.loadgen(self.job(seconds))
        codes: dict[str, int] = result["codes"]
        non_2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
        return {
            "events_per_s": result["ok_per_s"],
            "p50_ms": result["latency"]["p50_ms"],
            "p99_ms": result["latency"]["p99_ms"],
            "requests": result["requests"],
            "acknowledged": result["ok"],
            "non_2xx": non_2xx,
            "answers_503": codes.get("503", 0),
            "connection_failures": result["failures"],
            "codes": codes,
            "elapsed_s": result["elapsed_s"],
            "latency": result["latency"],
        }


def start(stack: ExitStack, served: Served, log_dir: Path) -> None:
    served.base = stack.enter_context(http.server(served.settings, log_dir))
