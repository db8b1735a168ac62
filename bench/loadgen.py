"""HTTP load generator: N threads, one keep-alive connection each, loopback only.

Run as `python -m bench.loadgen` with a JSON job on stdin; prints a JSON result.
It runs in its own process so the benchmark's memory (the synthetic log) and its
garbage collector stay out of the client's latencies. Every loop is bounded by a
deadline and a request count.

Job: {"base": "http://127.0.0.1:PORT", "mode": "status" | "append", "threads": 16,
      "seconds": 15, "max_requests": 100000, "token": "...",
      "paths": [...]                  (status: GET paths, dealt round-robin)
      "writers": [[city, ...], ...]   (append: each thread's own cities)}
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.stats import summarize
from bench.synth import Frontier, advance, next_fresh
from dateline.domain.control import EventType, Status

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def connection(base: str) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    if parts.hostname not in LOOPBACK and not (parts.hostname or "").startswith("127."):
        raise ValueError(f"load is only sent to loopback addresses, not {parts.hostname}")
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)


class Worker:
    def __init__(self, job: dict[str, Any], index: int) -> None:
        self.job = job
        self.index = index
        self.latencies: list[float] = []
        self.codes: dict[int, int] = {}
        self.failures = 0
        self.conn = connection(job["base"])

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.failures += 1
            self.conn.close()
            self.conn = connection(self.job["base"])
            return 0
        self.latencies.append(time.perf_counter() - start)
        self.codes[response.status] = self.codes.get(response.status, 0) + 1
        return response.status


def run(job: dict[str, Any]) -> dict[str, Any]:
    threads = int(job["threads"])
    workers = [Worker(job, i) for i in range(threads)]
    per_thread = max(1, int(job["max_requests"]) // threads)
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def status_loop(w: Worker) -> None:
        paths = job["paths"][w.index :: threads] or job["paths"]
        barrier.wait()
        for n in range(per_thread):
            if time.perf_counter() >= deadline[0]:
                return
            w.request("GET", paths[n % len(paths)], None, {})

    def append_loop(w: Worker) -> None:
        rng = random.Random(w.index)
        cities = job["writers"][w.index]
        frontiers = [
            Frontier(Status(c["status"]), c["controller"], c["contested_by"], set(c["holders"]))
            for c in cities
        ]
        headers = {
            "Authorization": f"Bearer {job['token']}",
            "Content-Type": "application/json",
        }
        today = datetime.now(UTC).date().isoformat()
        barrier.wait()
        for n in range(per_thread):
            if time.perf_counter() >= deadline[0]:
                return
            i = n % len(cities)
            city, frontier = cities[i], frontiers[i]
            kind, actor = next_fresh(rng, frontier, city["actors"])
            body = {
                "type": kind.value,
                "occurred_on": today,
                "actor": actor,
                "source": {"name": "bench wire", "url": f"https://news.example/http/{n}"},
                "report_id": f"http-{rng.getrandbits(64):016x}",
            }
            code = w.request(
                "POST", f"/cities/{city['slug']}/events", json.dumps(body).encode(), headers
            )
            if code in (200, 201):
                advance(frontier, EventType(kind), actor)

    loop = status_loop if job["mode"] == "status" else append_loop
    pool = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for t in pool:
        t.start()
    started = time.perf_counter()
    deadline[0] = started + float(job["seconds"])
    barrier.wait()
    for t in pool:
        t.join(timeout=float(job["seconds"]) + 60)
    elapsed = time.perf_counter() - started
    for w in workers:
        w.conn.close()
    latencies = [x for w in workers for x in w.latencies]
    codes: dict[str, int] = {}
    for w in workers:
        for code, count in w.codes.items():
            codes[str(code)] = codes.get(str(code), 0) + count
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    return {
        "requests": len(latencies),
        "ok": ok,
        "failures": sum(w.failures for w in workers),
        "codes": codes,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
        "ok_per_s": round(ok / elapsed, 1) if elapsed else None,
        "latency": summarize(latencies),
        "threads": threads,
    }


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(run(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
