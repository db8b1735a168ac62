"""How the command line prints: tables, one-line statuses, and the one error it reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Emit = Callable[[Any, str], None]


class UsageError(Exception):
    """Bad input found after parsing; reported as one line, exit status 1."""


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def describe_status(row: dict[str, Any], name: str) -> str:
    if row["status"] == "unknown":
        return f"{name} on {row['as_of']}: unknown (before the record begins or was known)"
    if row["status"] == "contested":
        return (
            f"{name} on {row['as_of']}: held by {row['controller']}, contested by "
            f"{row['contested_by']} since {row['since']} (event {row['event_id']})"
        )
    return (
        f"{name} on {row['as_of']}: held by {row['controller']} since {row['since']} "
        f"(event {row['event_id']})"
    )


def history_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        detail = e["source"]["name"] if e["source"] else (e["reason"] or "")
        if e["retracts"]:
            detail = f"retracts {e['retracts']}: {e['reason']}"
        if e["retracted"]:
            detail += f"  [RETRACTED by {e['retracted']['event_id']}]"
        rows.append(
            {
                "id": e["id"],
                "recorded_at": e["recorded_at"][:19].replace("T", " "),
                "type": e["type"],
                "occurred_on": e["occurred_on"],
                "actor": e["actor"],
                "by": e["reported_by"],
                "source / reason": detail,
            }
        )
    return rows


HISTORY_COLUMNS = ("id", "recorded_at", "type", "occurred_on", "actor", "by", "source / reason")
