"""`dateline audit verify | keygen | checkpoint | replay | diff`: the record proves itself.

verify, keygen and checkpoint open the store with a plain connection of their
own (not the application), so they work on a store too damaged for the service
to open; replay and diff read through the application.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dateline.api import audit_views
from dateline.api.cli.render import Emit
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit import checkpoints, receipts
from dateline.infrastructure.audit.checkpoints import CheckpointError
from dateline.infrastructure.audit.guards import expected as guard_expected
from dateline.infrastructure.audit.guards import missing_guards, restore_guards
from dateline.infrastructure.audit.roles import role_warnings
from dateline.infrastructure.audit.service import take_checkpoint, verify_store
from dateline.infrastructure.audit.store import LogBroken
from dateline.infrastructure.settings import Settings

Out = Callable[[str], None]


class AuditFailed(Exception):
    """The log or a checkpoint did not verify, or an audit input is unusable."""


def run(args: argparse.Namespace, out: Out, settings: Settings) -> None:
    def emit(data: Any, text: str) -> None:
        out(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)

    try:
        if args.audit_command == "verify":
            verify(args, settings, emit)
        elif args.audit_command == "keygen":
            public = checkpoints.generate_key(args.out)
            emit(
                {"key_file": str(args.out), "public_key": public},
                f"private key written to {args.out} (keep it secret; "
                f"set DATELINE_AUDIT_KEY_FILE={args.out})\npublic key: {public}",
            )
        elif args.audit_command == "checkpoint":
            checkpoint(args, settings, emit)
        elif args.audit_command == "guards":
            check_guards_command(args, settings, emit)
        elif args.audit_command == "check-receipt":
            check_receipt(args, emit)
        elif args.audit_command in ("replay", "diff"):
            app = Dateline(settings)
            try:
                if args.audit_command == "replay":
                    rows = audit_views.replay(app, args.city, args.known_at)
                    emit(rows, render_replay(rows))
                else:
                    if args.end < args.start:
                        raise AuditFailed("--to must not be before --from")
                    data = audit_views.diff(app, args.city, args.start, args.end)
                    emit(data, render_diff(data))
            finally:
                app.close()
        else:  # argparse allows only the actions above
            raise AuditFailed(f"unknown audit command {args.audit_command!r}")
    except (CheckpointError, receipts.ReceiptsUnavailable, LogBroken) as error:
        raise AuditFailed(str(error)) from error
    except (psycopg.Error, sqlite3.Error, FileNotFoundError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AuditFailed(
            f"cannot read the audit log of {settings.store().describe()}: {first} "
            "(is it migrated? `dateline migrate`)"
        ) from error


def check_guards_command(args: argparse.Namespace, settings: Settings, emit: Emit) -> None:
    store = settings.store()
    if args.restore:
        restore_guards(settings.migrate_store())
    missing = missing_guards(store)
    warnings = role_warnings(store)
    expected = sum(len(t) for t in guard_expected(store.kind).values())
    lines = [f"missing: {m}" for m in missing] or [
        f"guards: all {expected} triggers in place{' (restored)' if args.restore else ''}"
    ]
    lines += [f"warning: {w}" for w in warnings]
    emit({"missing": missing, "warnings": warnings, "restored": args.restore}, "\n".join(lines))
    if missing:
        raise AuditFailed(
            f"{len(missing)} of {expected} guards missing: `dateline audit guards --restore` "
            "as the owner role puts them back"
        )


def write_receipt(app: Dateline, answer: dict[str, Any], path: Path) -> None:
    """`dateline status ... --receipt FILE`."""
    try:
        signed = receipts.issue(app, answer, datetime.now(UTC))
    except (CheckpointError, receipts.ReceiptsUnavailable) as error:
        raise AuditFailed(str(error)) from error
    path.write_text(json.dumps({**answer, "receipt": signed}, indent=2) + "\n")


def check_receipt(args: argparse.Namespace, emit: Emit) -> None:
    public_key = checkpoints.read_public_key(args.public_key) if args.public_key else None
    try:
        data = json.loads(args.file.read_text())
    except OSError as error:
        raise AuditFailed(f"cannot read {args.file}: {error}") from None
    except ValueError as error:
        raise AuditFailed(f"{args.file}: not JSON ({error})") from None
    receipt: Any = data.get("receipt") if isinstance(data, dict) and "receipt" in data else data
    try:
        checked = receipts.verify_receipt(receipt, public_key)
        answer = checked.answer
        if receipt is not data:  # `dateline status --receipt`: the answer beside its receipt
            for name, value in data.items():
                if name != "receipt" and answer.get(name) != value:
                    raise receipts.ReceiptError(
                        f"answer: {name} is {value!r} beside the receipt, "
                        f"{answer.get(name)!r} in it"
                    )
    except receipts.ReceiptError as error:
        raise AuditFailed(f"{args.file}: the receipt does not check: {error}") from None
    cp = checked.checkpoint
    proven = ""
    if cp is not None:
        proven = (
            f" and proven complete against the cities root of the checkpoint of "
            f"{cp.created_at} ({cp.size} entries)"
        )
    emit(
        {
            "valid": True,
            "answer": answer,
            "events": checked.events,
            "public_key": checked.public_key,
            "checkpoint": None if cp is None else cp.as_dict(),
        },
        f"{answer['city']} on {answer['as_of']}: {describe_state(answer)}"
        + (f" since {answer['since']} (event {answer['event_id']})" if answer["since"] else "")
        + f", as known at {answer['known_at']}\n"
        f"receipt checks: signed by {checked.public_key[:16]}..., {checked.events} events "
        f"re-hashed{proven}, {answer['version']} re-folded to the same answer",
    )


def verify(args: argparse.Namespace, settings: Settings, emit: Emit) -> None:
    public_key = checkpoints.read_public_key(args.public_key) if args.public_key else None
    against = checkpoints.read(args.against) if args.against else None
    report = verify_store(settings.store(), against, public_key)
    emit(report.as_dict(), report.summary())
    if not report.intact:
        problem = report.problem or {}
        where = problem.get("event") or f"entry {problem.get('position')}"
        raise AuditFailed(f"the record does not verify: first bad: {where} ({problem.get('what')})")


def checkpoint(args: argparse.Namespace, settings: Settings, emit: Emit) -> None:
    if settings.audit_key_file is None:
        raise AuditFailed(
            "DATELINE_AUDIT_KEY_FILE is not set: make a key with "
            "`dateline audit keygen --out FILE` and point the variable at it"
        )
    made = take_checkpoint(settings.store(), settings.audit_key_file, datetime.now(UTC))
    if args.out:
        args.out.write_text(made.to_json())
    where = f", written to {args.out}" if args.out else ""
    emit(
        json.loads(made.to_json()),
        f"checkpoint: {made.size} entries, head {made.head[:16]}..., {made.cities} cities, "
        f"root {str(made.cities_root)[:16]}..., signed by {made.public_key[:16]}... at "
        f"{made.created_at}{where}",
    )


def describe_state(state: dict[str, Any] | None) -> str:
    if state is None or state["status"] == "unknown":
        return "unknown"
    if state["status"] == "contested":
        return f"{state['controller']}, contested by {state['contested_by']}"
    return f"held by {state['controller']}"


def describe_event(e: dict[str, Any]) -> str:
    if e["type"] == "Retracted":
        return f"Retracted {e['retracts']}: {e['reason']}"
    if e["type"] == "Registered":
        return f"Registered, tracked since {e['occurred_on']}, held by {e['actor']}"
    source = f" ({e['source']['name']})" if e.get("source") else ""
    return f"{e['type']} by {e['actor']} on {e['occurred_on']}{source}"


def describe_change(c: dict[str, Any]) -> str:
    to = c["to"] or "open"
    return f"{c['from']}..{to}: {describe_state(c['before'])} -> {describe_state(c['after'])}"


def render_replay(rows: list[dict[str, Any]]) -> str:
    lines = []
    for e in rows:
        recorded = e["recorded_at"][:19].replace("T", " ")
        lines.append(f"{e['id']}  recorded {recorded} by {e['reported_by'] or '-'}: "
                     f"{describe_event(e)}")  # fmt: skip
        if e["day"]:
            lines.append(
                f"    on {e['day']}: before {describe_state(e['state_before'])}; "
                f"after {describe_state(e['state_after'])}"
            )
        if e["admitted_by"]:
            lines.append(f"    admitted: {e['admitted_by']}")
        for change in e["changed"]:
            lines.append(f"    changed: {describe_change(change)}")
        if e["log"]:
            lines.append(
                f"    log: entry {e['log']['position']}, hash {e['log']['entry_hash'][:16]}..."
            )
    return "\n".join(lines)


def render_diff(d: dict[str, Any]) -> str:
    lines = [
        f"{d['city']} between {d['from']} and {d['to']}: {len(d['recorded'])} recorded, "
        f"{len(d['retracted'])} retracted, {len(d['changed'])} runs of days answer differently"
    ]
    lines += [f"recorded:  {e['id']} {describe_event(e)}" for e in d["recorded"]]
    lines += [f"retracted: {e['id']} {describe_event(e)}" for e in d["retracted"]]
    lines += [f"changed:   {describe_change(c)}" for c in d["changed"]]
    return "\n".join(lines)
