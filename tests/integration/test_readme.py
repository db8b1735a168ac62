"""The README, followed word for word: every ```console block, in order.

What it does, as a reader on a fresh clone would after `make run`:

- a fresh directory stands for the clone: `.venv` in it is this interpreter's
  virtualenv, no DATELINE_* variable is set, so the store is `./dateline.sqlite`
  there (`make run`'s), and `dateline` is not on the PATH until a block runs
  `source .venv/bin/activate`;
- `dateline serve --seed` runs there on a free port, as `make run` does (the
  commands' `127.0.0.1:8000` is that port, and the answers' port reads 8000);
- each `$ ` line of a console block (with its `\\`-continued lines) runs in bash
  in that directory, stdout and stderr together; exported variables carry over
  to the later commands (`export TOKEN=...`, `source .venv/bin/activate`), as in
  one terminal. The lines after a command, up to the next `$ ` line, are its
  output; trailing blank lines do not count.
- each output is compared with the README's, both masked alike: instants
  (ISO 8601, the history table's `YYYY-MM-DD HH:MM:SS`, HTTP dates), ids (token
  secrets `dl_...`, request ids, UUIDs), durations (`0.14 s`, `3.2 ms`) and
  rates (`2,589 events/s`). Nothing else is masked. Commands run as the login
  `root` (`cli:root`).

A block that cannot run here opts out with the line `<!-- readme-test: skip -->`
just before its opening fence (blank lines between are allowed). Blocks of other
languages (```sh, ```json) are never run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP_MARKER = "<!-- readme-test: skip -->"
README_PORT = 8000
STARTUP_SECONDS = 90
COMMAND_SECONDS = 120

FENCE = re.compile(r"^```(\S*)\s*$")
ISO_INSTANT = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"
MASKS = (
    (re.compile(ISO_INSTANT), "<instant>"),
    (re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"), "<instant>"),
    (re.compile(r"dl_[A-Za-z0-9_-]+"), "dl_<id>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"\b\d+(?:\.\d+)? m?s\b"), "<duration>"),
    (re.compile(r"\b\d[\d,]* (?:events|cities)/s\b"), "<rate>"),
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    line: int  # in README.md, for the failure message
    command: str
    output: str


def console_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each ```console block not marked to skip."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        before = [line for line in lines[:i] if line.strip()]
        skipped = bool(before) and before[-1].strip() == SKIP_MARKER
        if opening.group(1) == "console" and not skipped:
            yield start + 1, lines[start:end]
        i = end + 1


def steps(text: str) -> list[Step]:
    found: list[Step] = []
    for first, block in console_blocks(text):
        i = 0
        while i < len(block):
            if not block[i].startswith("$ "):
                i += 1  # prose before the first command of a block
                continue
            line = first + i
            command = [block[i][2:]]
            while command[-1].endswith("\\") and i + 1 < len(block):
                i += 1
                command.append(block[i])
            i += 1
            output = []
            while i < len(block) and not block[i].startswith("$ "):
                output.append(block[i])
                i += 1
            found.append(Step(line, "\n".join(command), "\n".join(output).rstrip()))
    return found


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class Clone:
    """The reader's directory, the server `make run` started there, and one shell."""

    path: Path
    port: int
    env: dict[str, str]
    state: Path  # the shell's exported variables between commands

    def run(self, command: str) -> str:
        local = command.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{self.port}")
        local = local.replace(f"localhost:{README_PORT}", f"127.0.0.1:{self.port}")
        script = '. "$1"; eval "$2"; status=$?; export -p > "$1"; exit $status'
        done = subprocess.run(
            ["bash", "-c", script, "readme", str(self.state), local],
            cwd=self.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=COMMAND_SECONDS,
        )
        output = done.stdout.decode().replace("\r\n", "\n")
        return output.replace(f"127.0.0.1:{self.port}", f"127.0.0.1:{README_PORT}").rstrip()


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Clone]:
    venv = Path(sys.prefix)
    if not (venv / "bin" / "dateline").exists() or not (venv / "bin" / "activate").exists():
        pytest.fail(f"{venv} is not a virtualenv with `dateline` installed: run `make test`")
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    venv_bin = str(venv / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATELINE_", "VIRTUAL_ENV"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env.update(PATH=os.pathsep.join(path), LOGNAME="root", USER="root", PYTHONUNBUFFERED="1")
    state = tmp_path.parent / f"{tmp_path.name}.exports"
    state.write_text("")
    port = free_port()
    log = tmp_path.parent / f"{tmp_path.name}.server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [str(venv / "bin" / "dateline"), "serve", "--seed", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(server, port, log, seconds=STARTUP_SECONDS)
        yield Clone(tmp_path, port, env, state)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_the_readme_parser_reads_commands_outputs_and_skips() -> None:
    text = "\n".join(
        [
            "```console",
            "$ echo a \\",
            "    b",
            "a b",
            "",
            "$ true",
            "```",
            SKIP_MARKER,
            "",
            "```console",
            "$ exit 1",
            "```",
            "```sh",
            "$ exit 1",
            "```",
        ]
    )
    assert steps(text) == [Step(2, "echo a \\\n    b", "a b"), Step(6, "true", "")]
    assert mask("at 2026-11-24T22:30:24.643030Z (0.14 s), dl_Ab-9") == (
        "at <instant> (<duration>), dl_<id>"
    )


def test_the_readme_walkthrough_runs_word_for_word(clone: Clone) -> None:
    walkthrough = steps(README.read_text())
    assert len(walkthrough) >= 10, "the README's console blocks were not found"
    for step in walkthrough:
        got = clone.run(step.command)
        assert mask(got) == mask(step.output), (
            f"README.md line {step.line}: $ {step.command}\n--- README\n{step.output}\n"
            f"--- got\n{got}"
        )
