"""A lean HTTP/1.1 GET load generator: N keep-alive connections on one event loop.

Run as `python -m bench.loadgen_async` with a JSON job on stdin; prints a JSON
result. On a 2-core machine the client's CPU is taken from the server it
measures, so it is kept small (`bench.loadgen` runs a thread per client with
`http.client`): here each client is a coroutine on uvloop that writes a
prepared request and reads the answer by its Content-Length (no chunked
encoding: both servers measured send Content-Length). Loopback only, every loop
bounded by a deadline and a request count. The result includes the client's
own CPU time (user + system), so a report can say what the client cost.

Job: {"base": "http://127.0.0.1:PORT", "clients": 16, "seconds": 10,
      "max_requests": 1000000, "paths": ["/cities/x/status?...", ...],
      "headers": {"Accept": "application/json"}}
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from bench.stats import summarize

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request_bytes(path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status code; the body is read by its Content-Length and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def client(
    index: int,
    job: dict[str, Any],
    requests: list[bytes],
    start: asyncio.Event,
    deadline: list[float],
    out: dict[str, Any],
) -> None:
    parts = urlsplit(job["base"])
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    mine = requests[index :: int(job["clients"])] or requests
    budget = max(1, int(job["max_requests"]) // int(job["clients"]))
    latencies: list[float] = out["latencies"]
    codes: dict[int, int] = out["codes"]
    await start.wait()
    clock = time.perf_counter
    try:
        for n in range(budget):
            if clock() >= deadline[0]:
                return
            began = clock()
            writer.write(mine[n % len(mine)])
            status = await read_response(reader)
            latencies.append(clock() - began)
            codes[status] = codes.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        out["failures"] += 1
    finally:
        writer.close()


async def run_async(job: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(job["base"])
    if parts.hostname not in LOOPBACK and not (parts.hostname or "").startswith("127."):
        raise ValueError(f"load is only sent to loopback addresses, not {parts.hostname}")
    host = f"{parts.hostname}:{parts.port}"
    headers = dict(job.get("headers") or {})
    requests = [request_bytes(p, host, headers) for p in job["paths"]]
    out: dict[str, Any] = {"latencies": [], "codes": {}, "failures": 0}
    start = asyncio.Event()
    deadline = [float("inf")]
    tasks = [
        asyncio.create_task(client(i, job, requests, start, deadline, out))
        for i in range(int(job["clients"]))
    ]
    await asyncio.sleep(0.2)  # every connection open before the clock starts
    cpu_before = cpu_s()
    began = time.perf_counter()
    deadline[0] = began + float(job["seconds"])
    start.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=float(job["seconds"]) + 60)
    elapsed = time.perf_counter() - began
    cpu = cpu_s() - cpu_before
    latencies: list[float] = out["latencies"]
    codes = {str(k): v for k, v in sorted(out["codes"].items())}
    ok = sum(v for k, v in codes.items() if k.startswith("2") or k == "304")
    return {
        "requests": len(latencies),
        "ok": ok,
        "failures": out["failures"],
        "codes": codes,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(len(latencies) / elapsed, 1) if elapsed else None,
        "ok_per_s": round(ok / elapsed, 1) if elapsed else None,
        "latency": summarize(latencies),
        "clients": int(job["clients"]),
        "client_cpu_s": round(cpu, 3),
        "client_cpu_cores": round(cpu / elapsed, 3) if elapsed else None,
        "client_cpu_us_per_request": round(1e6 * cpu / len(latencies), 1) if latencies else None,
    }


def run(job: dict[str, Any]) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(run_async(job))
    except ImportError:  # pragma: no cover - uvloop is installed with the service
        return asyncio.run(run_async(job))


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(run(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
