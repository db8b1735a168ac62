"""The `dateline` command line's arguments: every command, its options and their types."""

from __future__ import annotations

import argparse
import getpass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dateline.api import instants
from dateline.domain.control import EventType


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
    imports = command(
        "import",
        "load an archive of control events (the seed format); nothing is written if a row "
        "is refused, and importing the same file again writes nothing",
    )
    imports.add_argument("events", type=Path, metavar="EVENTS_CSV", help="the control events")
    imports.add_argument(
        "--cities",
        type=Path,
        metavar="CITIES_CSV",
        help="the cities (default: cities.csv beside EVENTS_CSV, if there is one)",
    )
    imports.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    imports.add_argument(
        "--country",
        default="Afghanistan",
        help="for cities whose row has no country column (the seed format has none)",
    )
    imports.add_argument(
        "--reporter",
        default="import",
        help="recorded as reported_by for rows without a reported_by column",
    )
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
    add_audit_arguments(
        command("audit", "prove the record: verify, checkpoints, receipts", json_output=False)
    )
    return parser


def add_audit_arguments(audit: argparse.ArgumentParser) -> None:
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    verify = action(
        "verify",
        "re-derive every log entry from the stored events; exit 1 naming the first bad event",
    )
    verify.add_argument(
        "--against",
        type=Path,
        metavar="CHECKPOINT_FILE",
        help="a signed checkpoint the log must still extend (catches rollbacks and rewrites)",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help="the operator's public key (hex, as keygen prints it): checkpoints must be "
        "signed by it",
    )
    keygen = action("keygen", "make an Ed25519 signing key; prints its public key")
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE")
    checkpoint = action(
        "checkpoint", "sign the log's size and head (key: DATELINE_AUDIT_KEY_FILE) and keep it"
    )
    checkpoint.add_argument("--out", type=Path, metavar="FILE", help="also write it to FILE")
    guards = action(
        "guards",
        "are the triggers refusing rewrites in place? --restore puts them back "
        "(connects as DATELINE_MIGRATE_DATABASE_URL's role if set)",
    )
    guards.add_argument("--restore", action="store_true")
    check_receipt = action(
        "check-receipt",
        "check a receipt offline: signature, hashes, and the answer re-folded from its events",
    )
    check_receipt.add_argument("file", type=Path, metavar="FILE")
    check_receipt.add_argument(
        "--public-key", type=Path, metavar="FILE", help="the operator's public key (hex)"
    )
    replay = action(
        "replay",
        "every event of a city in recording order: who, when, source, state before and "
        "after, the rule that admitted it, what it changed, its log entry",
    )
    replay.add_argument("city")
    replay.add_argument("--known-at", type=parse_instant, metavar="INSTANT")
    diff = action(
        "diff", "events recorded and retracted between two record times, and what changed"
    )
    diff.add_argument("city")
    diff.add_argument("--from", dest="start", type=parse_instant, required=True, metavar="INSTANT")
    diff.add_argument("--to", dest="end", type=parse_instant, required=True, metavar="INSTANT")
