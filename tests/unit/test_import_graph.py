"""The house rules for imports, read from the sources: dependencies point inward
(api -> infrastructure -> domain), the domain imports no infrastructure, no module
imports a module that imports it back, and neither the product nor its tests import
the benchmarks."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "infrastructure", "api", "seeds")  # installed as dateline.<layer>
DOMAIN_MAY_IMPORT = {"eventsourcing"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["dateline", *parts]) if parts[0] in LAYERS else ".".join(parts)


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def sources(*folders: str) -> dict[str, Path]:
    return {module_name(p): p for f in folders for p in (ROOT / f).rglob("*.py")}


PRODUCT = sources(*LAYERS)


def graph() -> dict[str, set[str]]:
    return {
        name: {m for m in imports(path) if m in PRODUCT} - {name} for name, path in PRODUCT.items()
    }


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_dependencies_point_inward() -> None:
    rank = {
        "dateline.domain": 0,
        "dateline.infrastructure": 1,
        "dateline.seeds": 2,
        "dateline.api": 3,
    }
    wrong = []
    for name, targets in graph().items():
        layer = ".".join(name.split(".")[:2])
        for target in targets:
            if rank[".".join(target.split(".")[:2])] > rank[layer]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_the_domain_imports_only_the_standard_library_and_eventsourcing() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    foreign = {
        f"{name}: {m}"
        for name, path in PRODUCT.items()
        if name.startswith("dateline.domain")
        for m in imports(path)
        if m.split(".")[0] not in stdlib | DOMAIN_MAY_IMPORT and not m.startswith("dateline.domain")
    }
    assert foreign == set()


def test_nothing_outside_bench_imports_bench() -> None:
    found = {
        f"{name}: {m}"
        for name, path in {**PRODUCT, **sources("tests")}.items()
        for m in imports(path)
        if m == "bench" or m.startswith("bench.")
    }
    assert found == set()
