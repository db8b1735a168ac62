"""The wheel installs everything under one namespace, `dateline`: every module and
data file of the design card's folders, and nothing else at the top level."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("domain", "infrastructure", "api", "seeds")
DATA_SUFFIXES = {".csv", ".mako", ".html", ".js", ".css", ".geojson"}


def build_wheel(into: Path) -> Path:
    # From a copy of the sources: a build in the checkout would reuse its build/.
    source = into / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(into)]
    subprocess.run([*command, str(source)], check=True, capture_output=True)
    (wheel,) = into.glob("dateline-*.whl")
    return wheel


def test_the_wheel_holds_every_module_under_dateline_and_nothing_else(tmp_path: Path) -> None:
    wheel = zipfile.ZipFile(build_wheel(tmp_path))
    names = set(wheel.namelist())

    top_level = {name.split("/", 1)[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"dateline"}

    expected = {
        f"dateline/{path.relative_to(ROOT).as_posix()}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix == ".py" or path.suffix in DATA_SUFFIXES)
    }
    assert sorted(expected - names) == [], "left out of the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dateline = dateline.api.cli:main" in wheel.read(entry_points).decode()
