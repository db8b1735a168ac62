"""The `dateline` command line: migrate, seed, query and append.

Readable tables by default, `--json` for machines. Anything wrong with the
input ends with one line on stderr naming what is wrong, exit status 1 (2 for
a malformed command line), and nothing written.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api import audit_commands, instants
from api.presenters import event_dict, interval_dict, status_dict
from domain.control import EventType, Source
from domain.errors import CityNotFound, DomainError
from infrastructure import migrations
from infrastructure.application import (
    ConcurrencyConflict,
    Dateline,
    StoreNotMigrated,
    StoreUnavailable,
)
from infrastructure.audit.damage import UndecodableEvent, log_gap
from infrastructure.audit.roles import grant_service_role
from infrastructure.settings import ConfigurationError, Settings

MISSION_DATES = (date(2015, 9, 28), date(2016, 10, 3), date(2021, 8, 8))


class UsageError(Exception):
    """Bad input found after parsing; reported as one line, exit status 1."""


# ------------------------------------------------------------------ parsing
def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_instant(text: str) -> datetime:
    """ISO 8601 with a time zone, or a bare date: the end of that day, UTC (`api.instants`)."""
    try:
        return instants.parse_instant(text)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def parse_event_type(text: str) -> EventType:
    for kind in EventType:
        if kind.value.lower() == text.lower():
            return kind
    choices = ", ".join(k.value for k in EventType)
    raise argparse.ArgumentTypeError(f"{text!r} is not an event type ({choices})")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dateline",
        formatter_class=HelpFormatter,
        description="Who controls a city, since when, who says so - as of any date, "
        "as known at any moment.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, *, json_output: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        if json_output:
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    command("migrate", "upgrade the store's schema to the latest migration", json_output=False)
    command("seed", "load the 2015-2021 timeline (running it twice adds nothing)")
    command("cities", "every city with its current status")
    command(
        "demo", "seed, then show Kunduz on the mission's three dates and its log", json_output=False
    )

    status = command("status", "a city's control as of a date, as known at a moment")
    status.add_argument("city")
    status.add_argument(
        "--as-of",
        type=parse_day,
        metavar="YYYY-MM-DD",
        help="the day in the world (default: today)",
    )
    status.add_argument(
        "--known-at",
        type=parse_instant,
        metavar="INSTANT",
        help="only what was recorded by then, ISO 8601 with a time zone; a bare date "
        "means the end of that day, UTC (default: now)",
    )
    status.add_argument(
        "--receipt",
        type=Path,
        metavar="FILE",
        help="also write a signed receipt (DATELINE_AUDIT_KEY_FILE) to FILE; "
        "check it with `dateline audit check-receipt FILE`",
    )

    for name, help_text in (
        ("history", "the city's log in recording order"),
        ("timeline", "the city's control intervals in world order"),
    ):
        sub = command(name, help_text)
        sub.add_argument("city")
        sub.add_argument(
            "--known-at",
            type=parse_instant,
            metavar="INSTANT",
            help="only what was recorded by then (default: now)",
        )

    report = command("report", "append a Contested, Captured or Retaken event")
    report.add_argument("city")
    report.add_argument(
        "type", type=parse_event_type, metavar="TYPE", help="Contested | Captured | Retaken"
    )
    report.add_argument(
        "--on", type=parse_day, required=True, metavar="YYYY-MM-DD", help="the day it happened"
    )
    report.add_argument("--actor", required=True, help="who contested, captured or retook it")
    report.add_argument("--source", required=True, help="who says so (e.g. Reuters)")
    report.add_argument("--url", help="where the source says it")
    report.add_argument("--quote", help="the source's words")
    report.add_argument("--note", help="the desk's note")
    report.add_argument("--report-id", help="a repeat with the same id writes nothing")
    report.add_argument(
        "--reporter",
        default=f"cli:{getpass.getuser()}",
        help="recorded as reported_by (default: cli:<login>)",
    )

    retract = command("retract", "withdraw an event, with the reason")
    retract.add_argument("city")
    retract.add_argument("event_id", help="e.g. kunduz-4 (see `dateline history`)")
    retract.add_argument("--reason", required=True, help="why it is withdrawn")
    retract.add_argument(
        "--editor",
        default=f"cli:{getpass.getuser()}",
        help="recorded as retracted_by (default: cli:<login>)",
    )
    export = command(
        "export",
        "CSV of every city's status, or of the changes (as the HTTP exports)",
        json_output=False,
    )
    exports = export.add_subparsers(dest="export_command", required=True, metavar="WHAT")
    export_status = exports.add_parser("status", help="every city's status on a date")
    export_status.add_argument("--as-of", type=parse_day, metavar="YYYY-MM-DD")
    export_changes = exports.add_parser("changes", help="control events over a range of days")
    export_changes.add_argument(
        "--from", dest="start", type=parse_day, required=True, metavar="YYYY-MM-DD"
    )
    export_changes.add_argument("--to", type=parse_day, metavar="YYYY-MM-DD")
    export_changes.add_argument("--include-retracted", action="store_true")
    for sub in (export_status, export_changes):
        sub.add_argument("--known-at", type=parse_instant, metavar="INSTANT")
        form = sub.add_mutually_exclusive_group()
        form.add_argument("--csv", action="store_true", help="CSV, RFC 4180 (the default)")
        form.add_argument("--json", action="store_true", help="a JSON array of the same rows")

    serve = command("serve", "run the HTTP API (uvicorn)", json_output=False)
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on")
    serve.add_argument("--seed", action="store_true", help="load the seeds before serving")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes (default: one per core on PostgreSQL; one on SQLite, "
        "whose writes go through one writer)",
    )

    def action(group: argparse._SubParsersAction[Any], name: str, help_text: str) -> Any:
        sub = group.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    tokens = command(
        "tokens", "manage API tokens (only their hashes are stored)", json_output=False
    )
    token_actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = action(token_actions, "create", "create a token and print it once")
    create.add_argument("--name", required=True, help="recorded as reported_by on its writes")
    create.add_argument(
        "--quiet",
        action="store_true",
        help="print the token alone, e.g. export TOKEN=$(dateline tokens create ... --quiet)",
    )
    create.add_argument(
        "--role",
        required=True,
        choices=("reader", "reporter", "editor", "admin"),
        help="what it may do",
    )
    action(token_actions, "list", "list tokens (never their secrets)")
    action(token_actions, "revoke", "revoke a token by name").add_argument("name")

    projections = command("projections", "maintain the bitemporal read model", json_output=False)
    projection_actions = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    action(projection_actions, "rebuild", "drop the read model and rebuild it from the log")
    action(
        projection_actions,
        "status",
        "the read model's position, lag behind the log, and degraded cities (exit 1 if any)",
    )
    check = action(
        projection_actions, "check", "compare the read model with the aggregate fold, every city"
    )
    check.add_argument("--samples", type=int, default=200, help="(as_of, known_at) pairs per city")
    audit_commands.add_arguments(
        command("audit", "prove the record: verify, checkpoints, receipts", json_output=False)
    )
    return parser


# ---------------------------------------------------------------- rendering
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


# ----------------------------------------------------------------- commands
class Runner:
    def __init__(self, args: argparse.Namespace, out: Callable[[str], None]) -> None:
        self.args = args
        self.out = out
        self._app: Dateline | None = None

    @property
    def app(self) -> Dateline:
        if self._app is None:
            self._app = Dateline(Settings())
        return self._app

    def warn(self, message: str) -> None:
        print(f"dateline: {message}", file=sys.stderr, flush=True)

    def emit(self, data: Any, text: str) -> None:
        self.out(json.dumps(data, indent=2, ensure_ascii=False) if self.args.json else text)

    def city_name(self, slug: str) -> str:
        return self.app.city(slug).name

    def migrate(self) -> None:
        settings = Settings()
        store = settings.migrate_store()  # the owner role, if one is set
        migrations.wait_until_reachable(store, settings.migrate_retry_seconds, report=self.warn)
        migrations.upgrade(store)
        self.out(f"{store.describe()}: at migration {migrations.current_revision(store)}")
        granted = grant_service_role(settings)
        if granted:
            self.out(granted)

    def seed(self) -> None:
        started = time.perf_counter()
        result = self.seed_store()
        elapsed = time.perf_counter() - started
        data = {**result.__dict__, "seconds": round(elapsed, 3)}
        self.emit(
            data,
            f"seeded: {result.cities_registered} cities registered, "
            f"{result.events_written} events written, "
            f"{result.events_already_present} reports already present "
            f"({elapsed:.2f} s)",
        )

    def seed_store(self) -> Any:
        from seeds.loader import load_seeds

        return load_seeds(self.app)

    def cities(self) -> None:
        rows = []
        for slug in self.app.city_slugs():
            view = self.app.status(slug)
            rows.append(
                {**status_dict(view), "name": view.city.name, "province": view.city.province}
            )
        self.emit(
            rows,
            table(
                rows, ("city", "name", "province", "status", "controller", "contested_by", "since")
            ),
        )

    def status(self) -> None:
        view = self.app.status(self.args.city, self.args.as_of, self.args.known_at)
        row = status_dict(view)
        if self.args.receipt:  # a citable answer
            audit_commands.write_receipt(self.app, row, self.args.receipt)
        self.emit(row, describe_status(row, view.city.name))

    def history(self) -> None:
        events = [event_dict(e) for e in self.app.history(self.args.city, self.args.known_at)]
        self.emit(events, table(history_rows(events), HISTORY_COLUMNS))

    def timeline(self) -> None:
        _, intervals = self.app.timeline(self.args.city, self.args.known_at)
        rows = [interval_dict(i) for i in intervals]
        self.emit(
            rows, table(rows, ("from", "to", "status", "controller", "contested_by", "event_id"))
        )

    def report(self) -> None:
        a = self.args
        result = self.app.report(
            a.city,
            a.type,
            occurred_on=a.on,
            actor=a.actor,
            source=Source(a.source, a.url, a.quote),
            note=a.note,
            report_id=a.report_id,
            reported_by=a.reporter,
        )
        verb = "recorded" if result.created else "already recorded (nothing written)"
        e = result.event
        self.emit(
            {**event_dict(e), "created": result.created},
            f"{verb}: {e.id} {e.type} by {e.actor} on {e.occurred_on}",
        )

    def retract(self) -> None:
        a = self.args
        result = self.app.retract(a.city, a.event_id, reason=a.reason, retracted_by=a.editor)
        self.emit(
            event_dict(result.event),
            f"recorded: {result.event.id} retracts {a.event_id} ({a.reason})",
        )

    def demo(self) -> None:
        result = self.seed_store()
        self.out(
            f"Seeded {result.cities_registered} cities, {result.events_written} events "
            f"({result.events_already_present} reports were already present).\n"
        )
        self.out("Kunduz on the mission's three dates:")
        for day in MISSION_DATES:
            row = status_dict(self.app.status("kunduz", day))
            self.out("  " + describe_status(row, "Kunduz"))
        self.out("\nKunduz, its log in recording order:")
        events = [event_dict(e) for e in self.app.history("kunduz")]
        self.out(table(history_rows(events), HISTORY_COLUMNS))
        self.out("\nTry: dateline status kunduz --as-of 2015-09-28   (see README.md)")

    def serve(self) -> None:
        from api import serve

        serve.run(self.args, self.out)

    def export(self) -> None:
        from api import export_commands

        try:
            export_commands.run(self.args, self.app, self.out)
        except ValueError as bad:
            raise UsageError(str(bad)) from None

    def tokens(self) -> None:
        from api import token_commands

        token_commands.run(self.args, self.app, self.emit)

    def projections(self) -> None:
        from api import projection_commands

        projection_commands.run(self.args, self.app, self.emit)

    def audit(self) -> None:
        try:
            audit_commands.run(self.args, self.out, Settings())
        except audit_commands.AuditFailed as failure:
            raise UsageError(str(failure)) from failure

    def run(self) -> None:
        getattr(self, self.args.command)()


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    args = build_parser().parse_args(argv)
    runner = Runner(args, out)
    try:
        runner.run()
        sys.stdout.flush()  # here, where a closed pipe can still be handled
    except BrokenPipeError:
        return closed_pipe()
    except CityNotFound as missing:
        hint = ""
        try:
            close = difflib.get_close_matches(missing.slug, runner.app.city_slugs(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        except Exception:  # the hint is a courtesy; never hide the real error behind it
            pass
        return fail(f"{missing.message}{hint}")
    except UndecodableEvent as damaged:  # named, never a traceback
        return fail(damaged.describe(getattr(args, "city", None)))
    except ConcurrencyConflict as conflict:  # a gap in the city's log, named
        try:
            gap = log_gap(Settings().store(), conflict.slug)
        except Exception:  # the check is a courtesy; never hide the conflict behind it
            gap = None
        return fail(gap or str(conflict))
    except (
        DomainError,
        StoreNotMigrated,
        StoreUnavailable,
        ConfigurationError,
        UsageError,
        migrations.StoreUnreachable,
    ) as error:
        return fail(str(error))
    except ValidationError as error:
        first = error.errors()[0]
        return fail(f"DATELINE_{str(first['loc'][0]).upper()}: {first['msg']}")
    finally:
        if runner._app is not None:
            runner._app.close()
    return 0


def closed_pipe() -> int:
    """The reader went away (`dateline cities --json | head -1`): stop quietly.

    Whatever is still buffered for stdout goes to /dev/null, so the interpreter's
    final flush cannot print a traceback either; the status is the shell's for a
    process ended by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def fail(message: str) -> int:
    print(f"dateline: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
