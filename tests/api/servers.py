"""Real `dateline` processes for tests: a free port, a command line, a served store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dateline(*args: str) -> list[str]:
    return [sys.executable, "-m", "dateline.api.cli", *args]


def clean_env(**settings: str) -> dict[str, str]:
    """The process environment without stray DATELINE_* settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env | settings


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dateline(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def serve(env: dict[str, str], port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start `dateline serve` on 127.0.0.1:`port` and wait until /health answers 200."""
    with open(log, "ab") as output:
        process = subprocess.Popen(
            dateline("serve", "--host", "127.0.0.1", "--port", str(port), *extra),
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_until_healthy(process, port, log)
    return process


def wait_until_healthy(
    process: subprocess.Popen[bytes],
    port: int,
    log: Path,
    what: str = "dateline serve",
    seconds: float = STARTUP_SECONDS,
) -> None:
    """Until GET /health on 127.0.0.1:`port` answers 200; fails the test, with the
    server's log, if the process exits or does not answer in time."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not answer in time:\n{log.read_text()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
