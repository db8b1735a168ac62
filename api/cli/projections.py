"""`dateline projections rebuild | check`: the bitemporal read model's upkeep."""

from __future__ import annotations

import argparse
import time
from typing import Any

from dateline.api.cli.progress import progress_bar, rate
from dateline.api.cli.render import Emit, UsageError, table
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.read_model.check import Difference, check


def difference_dict(d: Difference) -> dict[str, Any]:
    return {
        "city": d.city,
        "what": d.what,
        "as_of": d.as_of.isoformat() if d.as_of else None,
        "known_at": d.known_at.isoformat() if d.known_at else None,
        "read_model": d.read_model,
        "fold": d.fold,
    }


def run(args: argparse.Namespace, app: Dateline, emit: Emit) -> None:
    model = app.read_model
    started = time.perf_counter()
    if args.projections_command == "rebuild":
        with progress_bar("rebuilding", "events", quiet=args.json) as progress:
            applied = app.projection.rebuild(progress)
        elapsed = time.perf_counter() - started
        position = model.position()
        emit(
            {"events_applied": applied, "position": position, "seconds": round(elapsed, 3)},
            f"rebuilt the read model from {applied} events "
            f"(log position {position}) in {elapsed:.2f} s, {rate(applied, elapsed, 'events')}",
        )
    elif args.projections_command == "status":
        position, events = model.progress()
        head = app.recorder.max_notification_id() or 0
        degraded = [
            {
                "city": d.slug,
                "event_id": d.event_id,
                "reason": d.reason,
                "noticed_at": d.noticed_at.isoformat(),
            }
            for d in model.degraded()
        ]
        lines = [
            f"read model at log position {position} of {head} ({events} events, "
            f"{max(0, head - position)} behind); "
            + (f"{len(degraded)} degraded" if degraded else "no city degraded")
        ]
        if degraded:
            lines.append(table(degraded, ("city", "event_id", "reason", "noticed_at")))
            lines.append("repair: dateline projections rebuild")
        emit(
            {"position": position, "log_head": head, "events": events, "degraded": degraded},
            "\n".join(lines),
        )
        if degraded:
            raise UsageError(f"{len(degraded)} degraded: " + ", ".join(d["city"] for d in degraded))
    elif args.projections_command == "check":
        if args.samples < 1:
            raise UsageError(f"--samples must be at least 1 (got {args.samples})")
        with progress_bar("checking", "cities", quiet=args.json) as progress:
            differences, compared = check(app, model, args.samples, progress=progress)
        elapsed = time.perf_counter() - started
        rows = [difference_dict(d) for d in differences]
        cities = len(app.city_slugs())
        summary = (
            f"{len(differences)} differences between the read model and the aggregate fold "
            f"({cities} cities, {compared} (as_of, known_at) pairs, {elapsed:.2f} s, "
            f"{rate(cities, elapsed, 'cities')})"
        )
        text = summary
        if rows:
            columns = ("city", "what", "as_of", "known_at", "read_model", "fold")
            text = table(rows, columns) + "\n" + summary
        emit(
            {
                "cities": cities,
                "pairs": compared,
                "seconds": round(elapsed, 3),
                "differences": rows,
            },
            text,
        )
        if differences:
            raise UsageError(summary)
    else:  # unreachable while the parser names the subcommands above
        raise UsageError(f"unknown projections command {args.projections_command!r}")
