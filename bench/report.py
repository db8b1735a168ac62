"""Markdown for docs/performance.md from a results file.

.venv/bin/python -m bench.report bench/results/<file>.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.analysis import LIMITS
from bench.run import fmt, headline


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| figure | value | baseline (same run) | ratio | target | met | limited by |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, f in result["figures"].items():
        if f["status"] != "measured":
            rows.append(f"| {key} | {f['status']} | - | - | {f['target']} | - | - |")
            continue
        met = {True: "met", False: f"**missed**: {f['missed_by']}", None: "-"}[f["met"]]
        rows.append(
            f"| {key} | {headline(f['value'])} | {headline(f['baseline'])} | {fmt(f['ratio'])} "
            f"| {f['target']} | {met} | {f['limited_by'] or '-'} |"
        )
    size, machine = result["size"], result["machine"]
    pg = machine["postgres"]
    lines = [
        f"{size['cities']:,} cities, {size['events_loaded']:,} events "
        f"({size['backdated']:.0%} backdated, {size['retracted']:.0%} retracted); "
        f"wall time {result['wall_time_s']:.0f} s; {machine['cpu_count']} CPUs "
        f"({machine.get('cpu_model')}), PostgreSQL {pg['server_version'].split()[0]} "
        f"(synchronous_commit={pg['synchronous_commit']}, shared_buffers={pg['shared_buffers']}), "
        f"Python {machine['python']}, eventsourcing {machine['packages'].get('eventsourcing')}, "
        f"psycopg {machine['packages'].get('psycopg')} ({machine['psycopg_impl']}); load average "
        f"{machine.get('load_average_at_start')} at start, {machine.get('load_average_at_end')} "
        "at the end.",
        "",
        *rows,
    ]
    return "\n".join(lines)


def annotate(path: Path) -> None:
    result = json.loads(path.read_text())
    for key, figure in result["figures"].items():
        if figure.get("met") is False:
            figure["limited_by"] = LIMITS.get(key)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--annotate"] and len(args) == 2:
        annotate(Path(args[1]))
        return 0
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(markdown(json.loads(Path(args[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
