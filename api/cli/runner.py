"""The `dateline` command line: migrate, seed, query and append; one module per group.

Readable tables by default, `--json` for machines. Anything wrong with the
input ends with one line on stderr naming what is wrong, exit status 1 (2 for
a malformed command line), and nothing written.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError

from dateline.api.cli.audit import AuditFailed, write_receipt
from dateline.api.cli.audit import run as run_audit
from dateline.api.cli.parser import build_parser
from dateline.api.cli.progress import progress_bar, rate
from dateline.api.cli.render import (
    HISTORY_COLUMNS,
    UsageError,
    describe_status,
    history_rows,
    table,
)
from dateline.api.schemas import CityStatusOut, EventOut, IntervalOut, StatusOut, dump
from dateline.domain.control import Source
from dateline.domain.errors import CityNotFound, DomainError
from dateline.infrastructure import migrations
from dateline.infrastructure.application import (
    ConcurrencyConflict,
    Dateline,
    StoreNotMigrated,
    StoreUnavailable,
)
from dateline.infrastructure.audit.damage import UndecodableEvent, log_gap
from dateline.infrastructure.audit.roles import grant_service_role
from dateline.infrastructure.importer import ImportFileError, ImportInterrupted
from dateline.infrastructure.progress import Progress
from dateline.infrastructure.read_model.queries import CityDegraded
from dateline.infrastructure.settings import ConfigurationError, Settings

MISSION_DATES = (date(2015, 9, 28), date(2016, 10, 3), date(2021, 8, 8))


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
        with progress_bar("seeding", "cities", quiet=self.args.json) as progress:
            result = self.seed_store(progress)
        elapsed = time.perf_counter() - started
        data = {**result.__dict__, "seconds": round(elapsed, 3)}
        self.emit(
            data,
            f"seeded: {result.cities_registered} cities registered, "
            f"{result.events_written} events written, "
            f"{result.events_already_present} reports already present "
            f"({elapsed:.2f} s, {rate(result.events_written, elapsed, 'events')})",
        )

    def seed_store(self, progress: Progress | None = None) -> Any:
        from dateline.seeds.loader import load_seeds

        return load_seeds(self.app, progress=progress)

    def import_archive(self) -> None:
        from dateline.infrastructure.importer import default_cities_file, run_import

        a = self.args
        cities = a.cities if a.cities is not None else default_cities_file(a.events)
        started = time.perf_counter()
        with progress_bar("importing", "cities", quiet=a.json or a.dry_run) as progress:
            result = run_import(
                self.app,
                a.events,
                cities,
                dry_run=a.dry_run,
                progress=progress,
                country=a.country,
                reporter=a.reporter,
            )
        elapsed = time.perf_counter() - started
        data = {
            "cities_registered": result.cities_registered,
            "events_written": 0 if a.dry_run else result.events_written,
            "events_already_present": result.events_already_present,
            "rows": result.rows,
            "cities": result.cities,
            "dry_run": a.dry_run,
            "refused": [r.as_dict() for r in result.refusals],
            "seconds": round(elapsed, 3),
        }
        if result.refusals:
            if a.json:
                self.out(json.dumps(data, indent=2, ensure_ascii=False))
            else:
                for refusal in result.refusals:
                    print(f"dateline: refused: {refusal.describe()}", file=sys.stderr)
            raise UsageError(f"{len(result.refusals)} row(s) refused; nothing written")
        if a.dry_run:
            data["events_to_write"] = result.events_written
            self.emit(
                data,
                f"checked {result.rows} rows: {result.cities_registered} cities to register, "
                f"{result.events_written} events to write, "
                f"{result.events_already_present} reports already present; "
                f"nothing written (--dry-run) ({elapsed:.2f} s)",
            )
            return
        self.emit(
            data,
            f"imported: {result.cities_registered} cities registered, "
            f"{result.events_written} events written, "
            f"{result.events_already_present} reports already present "
            f"({elapsed:.2f} s, {rate(result.events_written, elapsed, 'events')})",
        )

    def cities(self) -> None:
        rows = [dump(CityStatusOut, view) for view in self.app.read_model.statuses()]
        self.emit(
            rows,
            table(
                rows, ("city", "name", "province", "status", "controller", "contested_by", "since")
            ),
        )

    def status(self) -> None:
        view = self.app.read_model.status(self.args.city, self.args.as_of, self.args.known_at)
        row = dump(StatusOut, view)
        if self.args.receipt:  # a citable answer
            try:
                write_receipt(self.app, row, self.args.receipt)
            except AuditFailed as failure:  # no key, or no checkpoint can cover it
                raise UsageError(str(failure)) from failure
        self.emit(row, describe_status(row, view.city.name))

    def history(self) -> None:
        city, known_at = self.args.city, self.args.known_at
        try:
            logged = self.app.read_model.history(city, known_at)
        except CityDegraded:  # its read model is damaged; the log is not: read the log
            logged = self.app.history(city, known_at)
        events = [dump(EventOut, e) for e in logged]
        self.emit(events, table(history_rows(events), HISTORY_COLUMNS))

    def timeline(self) -> None:
        _, intervals = self.app.read_model.timeline(self.args.city, self.args.known_at)
        rows = [dump(IntervalOut, i) for i in intervals]
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
            {**dump(EventOut, e), "created": result.created},
            f"{verb}: {e.id} {e.type} by {e.actor} on {e.occurred_on}",
        )

    def retract(self) -> None:
        a = self.args
        result = self.app.retract(a.city, a.event_id, reason=a.reason, retracted_by=a.editor)
        self.emit(
            dump(EventOut, result.event),
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
            row = dump(StatusOut, self.app.read_model.status("kunduz", day))
            self.out("  " + describe_status(row, "Kunduz"))
        self.out("\nKunduz, its log in recording order:")
        events = [dump(EventOut, e) for e in self.app.read_model.history("kunduz")]
        self.out(table(history_rows(events), HISTORY_COLUMNS))
        self.out("\nTry: dateline status kunduz --as-of 2015-09-28   (see README.md)")

    def serve(self) -> None:
        from dateline.api.cli.serve import run as run_serve

        run_serve(self.args, self.out)

    def export(self) -> None:
        from dateline.api.cli.export import run as run_export

        try:
            run_export(self.args, self.app, self.out)
        except ValueError as bad:
            raise UsageError(str(bad)) from None

    def tokens(self) -> None:
        from dateline.api.cli.tokens import run as run_tokens

        run_tokens(self.args, self.app, self.emit)

    def projections(self) -> None:
        from dateline.api.cli.projections import run as run_projections

        run_projections(self.args, self.app, self.emit)

    def audit(self) -> None:
        try:
            run_audit(self.args, self.out, Settings())
        except AuditFailed as failure:
            raise UsageError(str(failure)) from failure

    def run(self) -> None:
        name = self.args.command
        getattr(self, "import_archive" if name == "import" else name)()


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
        CityDegraded,
        StoreNotMigrated,
        StoreUnavailable,
        ConfigurationError,
        UsageError,
        ImportInterrupted,
        migrations.StoreUnreachable,
    ) as error:
        return fail(str(error))
    except ImportFileError as error:  # the files are not in the format: a usage error
        print(f"dateline: error: {error}", file=sys.stderr)
        return 2
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
