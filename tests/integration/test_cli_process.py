"""The `dateline` command as a process: a closed pipe ends quietly; --help shows defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dateline.api.cli.serve import command_name
from dateline.infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def dateline(*args: str) -> list[str]:
    return [sys.executable, "-m", "dateline.api.cli", *args]


def store_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATELINE_")}
    env["DATELINE_DATABASE_URL"] = settings.database_url or ""
    return env


def test_a_closed_pipe_ends_quietly(make_settings: Callable[..., Settings]) -> None:
    env = store_env(make_settings("sqlite"))
    seeded = subprocess.run(dateline("seed"), env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr.decode()

    # The reader is gone before the command writes a byte: every write fails.
    process = subprocess.Popen(
        dateline("cities", "--json"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE
    assert stderr == ""

    # The shell's way: head reads one line and leaves.
    piped = subprocess.run(
        ["sh", "-c", f"{' '.join(dateline('cities', '--json'))} | head -1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, b"[\n", b"")


def test_help_shows_the_defaults() -> None:
    shown = subprocess.run(
        dateline("serve", "--help"), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    assert "(default: 127.0.0.1)" in shown.stdout and "(default: 8000)" in shown.stdout


def test_the_token_hint_names_the_command_this_shell_can_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "dateline"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [".venv/bin/dateline", "serve"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == ".venv/bin/dateline"  # `make run`: not on the PATH
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert command_name() == "dateline"  # activated, or installed (the image)
