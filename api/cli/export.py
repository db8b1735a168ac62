"""`dateline export status | changes`: the CSV exports of the HTTP API, on stdout.

The same rows and columns as `GET /status.csv` and `GET /changes.csv` (see
api.exports); `--json` prints them as a JSON array instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime

from dateline.api.exports import CHANGES_COLUMNS, STATUS_COLUMNS, change_rows, status_rows, to_csv
from dateline.api.queries import make_queries
from dateline.infrastructure.application import Dateline


def run(args: argparse.Namespace, app: Dateline, out: Callable[[str], None]) -> None:
    queries = make_queries(app)
    known: datetime = args.known_at or app.clock()
    if args.export_command == "status":
        rows = status_rows(app, queries, args.as_of, known)
        columns = STATUS_COLUMNS
    else:
        last = args.to or known.date()
        if last < args.start:
            raise ValueError(f"--to ({last}) is before --from ({args.start})")
        rows = change_rows(
            queries, args.start, last, known, include_retracted=args.include_retracted
        )
        columns = CHANGES_COLUMNS
    if args.json:
        out(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        out(to_csv(columns, rows).removesuffix("\r\n"))
