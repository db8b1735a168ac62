"""`dateline audit verify | keygen | checkpoint`: the record proves itself.

These commands open the store with a plain connection of their own (not the
application), so they work on a store too damaged for the service to open.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infrastructure.audit import checkpoints
from infrastructure.audit.checkpoints import CheckpointError
from infrastructure.audit.service import take_checkpoint, verify_store
from infrastructure.settings import Settings

Out = Callable[[str], None]


class AuditFailed(Exception):
    """The log or a checkpoint did not verify, or an audit input is unusable."""


def add_arguments(audit: argparse.ArgumentParser) -> None:
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
        else:  # argparse allows only the actions above
            raise AuditFailed(f"unknown audit command {args.audit_command!r}")
    except CheckpointError as error:
        raise AuditFailed(str(error)) from error


def verify(args: argparse.Namespace, settings: Settings, emit: Callable[[Any, str], None]) -> None:
    public_key = checkpoints.read_public_key(args.public_key) if args.public_key else None
    against = checkpoints.read(args.against) if args.against else None
    report = verify_store(settings.store(), against, public_key)
    emit(report.as_dict(), report.summary())
    if not report.intact:
        raise AuditFailed(report.summary() + " (run `dateline audit verify --json` for details)")


def checkpoint(
    args: argparse.Namespace, settings: Settings, emit: Callable[[Any, str], None]
) -> None:
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
        f"checkpoint: {made.size} entries, head {made.head[:16]}..., signed by "
        f"{made.public_key[:16]}... at {made.created_at}{where}",
    )
