"""The lock files pin every dependency pyproject.toml declares, within its range.

`make run` installs requirements.lock (the service), `make test` and `.ci/run`
requirements-dev.lock (the service and the tools); `make lock` rewrites both.
A dependency added to pyproject.toml without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))]
)
def test_lock_pins_every_declared_dependency(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for requirement in declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} lacks {name}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {requirement}: run `make lock`"
        )
    hashed = re.findall(r"^\S+==[^\n]* \\\n\s+--hash=sha256:", (ROOT / lock).read_text(), re.M)
    assert len(hashed) == len(pinned), f"{lock}: every pin carries its hashes"


def test_the_service_lock_has_no_development_tools() -> None:
    service = pins("requirements.lock")
    needed = {canonicalize_name(r.name) for r in declared()}
    for tool in declared("dev")[len(declared()) :]:
        if canonicalize_name(tool.name) in needed:
            continue  # a service dependency with a test-only extra (eventsourcing[crypto])
        assert canonicalize_name(tool.name) not in service
    assert "pycryptodome" not in service
