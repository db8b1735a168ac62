"""The image's command, run here under `sh` (no Docker engine needed): it migrates,
seeds and serves, the server is the shell's own process (`exec`), and SIGTERM, as
`docker stop` sends it to PID 1, ends it through uvicorn's graceful shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.api.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90


def test_entrypoint_execs_the_server_which_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    # The image's PATH has `dateline`; here it is beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HOST="127.0.0.1", PORT=str(port), PYTHONUNBUFFERED="1")
    log = tmp_path / "container.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["sh", str(ROOT / "docker-entrypoint.sh")],
            cwd=tmp_path,  # the image's /data: the SQLite store lands here
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(process, port, log, "the entrypoint's server", seconds=STARTUP_SECONDS)
        # exec: the process `sh` started as is now the server itself.
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in command and b"sh" not in command
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down: the status says SIGTERM.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output_text = log.read_text()
    assert "seeded: 32 cities registered" in output_text
    assert "Application shutdown complete." in output_text
    assert "Finished server process" in output_text
    assert (tmp_path / "dateline.sqlite").exists()
