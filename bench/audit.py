"""Audit figures (issue 9), on PostgreSQL, each against a baseline from the same run.

    .venv/bin/python -m bench.audit [--events 1000000] [--reps 3] [--append-seconds 10]

* verify: `audit verify` (re-derive every entry) on a log of --events events,
  against streaming the same event rows raw through one server-side cursor;
* append: 16 threads appending in process with the hash log, against the same
  with the log's hook switched off (same schema, same code otherwise);
* receipt: a status answer with its signed receipt, against the same answer without
  one (the seeds, random cities and dates, calls alternating).

Runs alternate (baseline, figure, baseline, figure, ...) and report medians and
the load average around each run: the machine is shared. The big log is made
fast: real events written through the application are used as templates for
COPYed rows of many synthetic cities, and their entries computed with the
same chain code the recorders use, so verify sees exactly what it would see.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from dateline.domain.control import EventType, Source
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.audit import store as audit_store
from dateline.infrastructure.audit.chain import GENESIS, chain, event_hash
from dateline.infrastructure.audit.service import verify_store
from dateline.infrastructure.settings import Settings

DEFAULT_URL = os.environ.get(
    "DATELINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PER_CITY = 50


def load() -> float:
    return round(os.getloadavg()[0], 2)


def fill_log(
    url: str, schema: str, events: int, templates: list[tuple[str, bytes]], per_city: int = PER_CITY
) -> float:
    """COPY `events` rows (`per_city` per synthetic city) and their log entries."""
    started = time.perf_counter()
    ids = [
        uuid.uuid5(uuid.NAMESPACE_URL, f"/bench/audit/{i}") for i in range(events // per_city + 1)
    ]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        head = conn.execute(f'SELECT count(*) FROM "{schema}".dateline_audit_log').fetchone()
        assert head is not None and head[0] == 0, "fill an empty log"
        hashes: list[bytes] = []
        keys: list[tuple[uuid.UUID, int]] = []
        with cur.copy(
            f'COPY "{schema}".dateline_events (originator_id, originator_version, topic, state) '
            "FROM STDIN"
        ) as copy:
            for i in range(events):
                topic, state = templates[i % len(templates)]
                key = (ids[i // per_city], i % per_city + 1)
                copy.write_row((*key, topic, state))
                keys.append(key)
                hashes.append(event_hash(*key, topic, state))
        # A fresh sequence (TRUNCATE ... RESTART IDENTITY): notification ids are 1..events.
        with cur.copy(
            f'COPY "{schema}".dateline_audit_log (position, notification_id, city_id, version, '
            "event_hash, entry_hash) FROM STDIN"
        ) as copy:
            for position, (key, h, link) in enumerate(
                zip(keys, hashes, chain(GENESIS, hashes), strict=True), start=1
            ):
                copy.write_row((position, position, *key, h, link))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{schema}".dateline_events')
        conn.execute(f'VACUUM ANALYZE "{schema}".dateline_audit_log')
    return time.perf_counter() - started


def big_log(
    url: str, schema: str, settings: Settings, events: int, per_city: int = PER_CITY
) -> float:
    """A log of `events` events: two real events as templates, then COPY."""
    app = Dateline(settings, migrate=True)
    try:
        for slug in ("alpha", "beta"):
            app.register_city(
                slug=slug, name=slug.title(), province="P", country="Afghanistan", lat=36.7,
                lon=68.8, population=1000, initial_controller="Afghan government",
                tracked_since=date(2015, 1, 1),
            )  # fmt: skip
            app.report(
                slug, EventType.CONTESTED, occurred_on=date(2015, 9, 26), actor="Taliban",
                source=Source("Reuters", "https://example.org/a-report", "a quote of some length"),
                reported_by="reporter:amina", report_id=f"r-{slug}",
            )  # fmt: skip
    finally:
        app.close()
    with psycopg.connect(url) as conn:
        templates = [
            (t, bytes(s))
            for t, s in conn.execute(
                f'SELECT topic, state FROM "{schema}".dateline_events ORDER BY notification_id'
            ).fetchall()
        ]
        guarded = ("dateline_events", "dateline_audit_log", "dateline_event_index")
        truncate_guard = "dateline_refuse_rewrite_truncate"
        for table in guarded:  # as the owner: the templates make way for the big log
            conn.execute(f'ALTER TABLE "{schema}".{table} DISABLE TRIGGER {truncate_guard}')
        tables = ", ".join(f'"{schema}".{table}' for table in guarded)
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")
        for table in guarded:
            conn.execute(f'ALTER TABLE "{schema}".{table} ENABLE ALWAYS TRIGGER {truncate_guard}')
    return fill_log(url, schema, events, templates, per_city)


def checkpoint_figure(url: str, schema: str, settings: Settings, events: int) -> dict[str, Any]:
    """Signing checkpoints on a big log (10,000 cities at 1,000,000 events): the first
    folds every entry into city heads; the next folds only what came since (1,000
    events of 1,000 cities). Then one receipt's tree (read the city heads, build it)."""
    from dateline.infrastructure.audit import checkpoints, merkle
    from dateline.infrastructure.audit.service import take_checkpoint
    from dateline.infrastructure.audit.store import AuditDatabase

    per_city = 100
    fill_s = big_log(url, schema, settings, events, per_city)
    key = Path(f"/tmp/bench-{uuid.uuid4().hex[:8]}.key")
    checkpoints.generate_key(key)
    loads = [load()]
    try:
        started = time.perf_counter()
        plain = verify_store(settings.store())  # the baseline: no checkpoint, no root
        plain_s = time.perf_counter() - started
        assert plain.intact, plain.summary()
        loads.append(load())
        started = time.perf_counter()
        first = take_checkpoint(settings.store(), key, datetime.now(UTC))
        first_s = time.perf_counter() - started
        loads.append(load())
        added = min(1000, events // per_city)
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            size, head = AuditDatabase(settings.store()).head(conn)
            topic, state = conn.execute(
                f'SELECT topic, state FROM "{schema}".dateline_events LIMIT 1'
            ).fetchone() or ("", b"")
            keys = [
                (uuid.uuid5(uuid.NAMESPACE_URL, f"/bench/audit/{i}"), per_city + 1)
                for i in range(added)
            ]
            hashes = [event_hash(c, v, topic, bytes(state)) for c, v in keys]
            with cur.copy(
                f'COPY "{schema}".dateline_events (notification_id, originator_id, '
                "originator_version, topic, state) FROM STDIN"
            ) as copy:
                for i, (c, v) in enumerate(keys, start=size + 1):
                    copy.write_row((i, c, v, topic, bytes(state)))
            with cur.copy(
                f'COPY "{schema}".dateline_audit_log (position, notification_id, city_id, '
                "version, event_hash, entry_hash) FROM STDIN"
            ) as copy:
                for i, ((c, v), h, link) in enumerate(
                    zip(keys, hashes, chain(head, hashes), strict=True), start=size + 1
                ):
                    copy.write_row((i, i, c, v, h, link))
        started = time.perf_counter()
        second = take_checkpoint(settings.store(), key, datetime.now(UTC))
        second_s = time.perf_counter() - started
        loads.append(load())
        db = AuditDatabase(settings.store())
        started = time.perf_counter()
        with db.connect() as conn:
            leaves = db.city_leaves(conn)
        tree = merkle.Tree([merkle.leaf_hash(merkle.leaf(*c)) for c in leaves])
        tree_s = time.perf_counter() - started
        assert tree.root.hex() == second.cities_root
        started = time.perf_counter()
        report = verify_store(settings.store())
        verify_s = time.perf_counter() - started
        assert report.intact, report.summary()
        loads.append(load())
    finally:
        key.unlink()
    return {
        "events": events,
        "cities": first.cities,
        "fill_seconds": round(fill_s, 1),
        "first_checkpoint_s (folds every entry)": round(first_s, 2),
        "next_checkpoint_s (after `added` new events)": round(second_s, 3),
        "added": added,
        "receipt_tree_build_s (once per checkpoint and process)": round(tree_s, 3),
        "verify_without_checkpoints_s (baseline)": round(plain_s, 2),
        "verify_with_cities_root_s": round(verify_s, 2),
        "ratio_with_root_over_without": round(verify_s / plain_s, 3),
        "verify_anchors": report.checkpoints_checked,
        "verify_roots": report.roots_checked,
        "sizes": [first.size, second.size],
        "load_avg_1m": loads,
    }


def raw_stream(url: str, schema: str) -> tuple[int, float]:
    """The baseline: the same event rows, in the same order, one server-side cursor."""
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="bench_raw") as cur:
        cur.itersize = audit_store.FETCH_ROWS
        started = time.perf_counter()
        cur.execute(
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f'FROM "{schema}".dateline_events ORDER BY notification_id'
        )
        for _ in cur:
            rows += 1
        return rows, time.perf_counter() - started


def verify_figure(
    url: str, schema: str, settings: Settings, events: int, reps: int
) -> dict[str, Any]:
    fill_s = big_log(url, schema, settings, events)
    raw_s: list[float] = []
    verify_s: list[float] = []
    loads: list[float] = []
    for _ in range(reps):
        loads.append(load())
        rows, seconds = raw_stream(url, schema)
        assert rows == events
        raw_s.append(seconds)
        loads.append(load())
        report = verify_store(settings.store())
        assert report.intact and report.events == events, report.summary()
        verify_s.append(report.seconds)
    loads.append(load())
    raw, ver = statistics.median(raw_s), statistics.median(verify_s)
    return {
        "events": events,
        "fill_seconds": round(fill_s, 1),
        "verify_s": [round(s, 2) for s in verify_s],
        "raw_read_s": [round(s, 2) for s in raw_s],
        "verify_median_s": round(ver, 2),
        "verify_events_per_s": round(events / ver),
        "raw_median_s": round(raw, 2),
        "raw_rows_per_s": round(events / raw),
        "ratio_raw_over_verify": round(raw / ver, 3),
        "target": "ratio >= 0.25, verify <= 30 s at 1,000,000 events, >= 100,000 events/s",
        "load_avg_1m": loads,
    }


def append_run(
    app: Dateline, slugs: list[str], seconds: float, day0: list[date]
) -> tuple[int, int]:
    """16 threads (one per city) append Contested/Retaken pairs until the deadline."""
    counts = [0] * len(slugs)
    errors = [0] * len(slugs)
    deadline = time.perf_counter() + seconds
    source = Source("Reuters")

    def work(i: int) -> None:
        slug = slugs[i]
        while time.perf_counter() < deadline:
            day0[i] += timedelta(days=1)
            try:
                app.report(slug, EventType.CONTESTED, occurred_on=day0[i], actor="Taliban",
                           source=source, reported_by="bench")  # fmt: skip
                app.report(slug, EventType.RETAKEN, occurred_on=day0[i], actor="Afghan government",
                           source=source, reported_by="bench")  # fmt: skip
                counts[i] += 2
            except Exception:
                errors[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(slugs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), sum(errors)


def register(app: Dateline, slug: str) -> None:
    app.register_city(
        slug=slug, name=slug.title(), province="P", country="Afghanistan", lat=36.7,
        lon=68.8, population=1000, initial_controller="Afghan government",
        tracked_since=date(1990, 1, 1),
    )  # fmt: skip


# 0005's function (one INSERT per event), kept here under another name so that a
# run can compare it with 0006's set-based one on the same schema.
def _loop_function(schema: str) -> str:
    import importlib

    m0006 = importlib.import_module("infrastructure.migrations.versions.0006_audit_cities")
    return (
        str(m0006.LOOP_FUNCTION)
        .format(s=f'"{schema}"')
        .replace(".dateline_audit_append(", ".dateline_audit_append_0005(")
    )


def append_hooks(schema: str) -> dict[str, Callable[..., None]]:
    """What the recorder's hook does in each kind of run: nothing; 0005's way (event
    hashes from Python, three arrays, one INSERT per entry); the 3-array function of
    0006 (set-based); the recorders' own since 0006 (the server hashes the n newest)."""
    from psycopg.sql import SQL, Identifier

    def arrays(function: str) -> Callable[..., None]:
        statement = SQL("SELECT {}.{}(%b::uuid[], %b::bigint[], %b::bytea[])").format(
            Identifier(schema), Identifier(function)
        )

        def call(conn: Any, _statement: Any, stored: Any) -> None:
            params = (
                [audit_store._uuid(s.originator_id) for s in stored],
                [s.originator_version for s in stored],
                audit_store.event_hashes(stored),
            )
            with conn.cursor() as cur:
                cur.execute(statement, params, prepare=False)

        return call

    return {
        "without": lambda *a, **k: None,
        "0005 loop": arrays("dateline_audit_append_0005"),
        "0006 arrays": arrays("dateline_audit_append"),
        "0006 recent": audit_store.postgres_append,
    }


def append_figure(
    settings: Settings, seconds: float, reps: int, threads: int = 16
) -> dict[str, Any]:
    """Each run gets 16 fresh cities (a city's appends slow down as it grows, so runs
    must start equal); the kinds alternate, and which goes first rotates."""
    app = Dateline(settings, migrate=True)
    schema = settings.store().schema
    with psycopg.connect(str(settings.database_url), autocommit=True) as c:
        c.execute(_loop_function(schema))
    hook: Callable[..., None] = audit_store.postgres_append
    hooks = append_hooks(schema)
    kinds = list(hooks)
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}  # this process's CPU ms per event
    loads: list[float] = []
    errors = 0
    try:
        for rep in range(reps):
            order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
            for kind in order:
                slugs = [f"city-{rep}-{kinds.index(kind)}-{i}" for i in range(threads)]
                for slug in slugs:
                    register(app, slug)
                audit_store.postgres_append = hooks[kind]  # type: ignore[assignment]
                loads.append(load())
                started, cpu_started = time.perf_counter(), time.process_time()
                n, e = append_run(app, slugs, seconds, [date(2000, 1, 1)] * threads)
                runs[kind].append(n / (time.perf_counter() - started))
                cpu[kind].append((time.process_time() - cpu_started) * 1000 / max(n, 1))
                errors += e
                audit_store.postgres_append = hook  # type: ignore[assignment]
        loads.append(load())
    finally:
        audit_store.postgres_append = hook  # type: ignore[assignment]
        app.close()
    medians = {k: statistics.median(v) for k, v in runs.items()}
    wo = medians["without"]
    return {
        "threads": threads,
        "seconds_per_run": seconds,
        "events_per_s": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "medians": {k: round(v, 1) for k, v in medians.items()},
        "ratio": round(medians["0006 recent"] / wo, 3),
        "ratios": {k: round(v / wo, 3) for k, v in medians.items() if k != "without"},
        "process_cpu_ms_per_event": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "process_cpu_ms_per_event_median": {
            k: round(statistics.median(v), 3) for k, v in cpu.items()
        },
        "ratios_by_round": {
            k: [round(x / y, 3) for x, y in zip(runs[k], runs["without"], strict=True)]
            for k in kinds
            if k != "without"
        },
        "target": "ratio (0006 recent, the recorders' hook, / without) >= 0.9",
        "errors": errors,
        "load_avg_1m": loads,
    }


def append_server_figure(
    url: str, batch: int = 15, appends: int = 300, reps: int = 3
) -> dict[str, Any]:
    """Server time of one append of `batch` events with each kind of hash-log hook, in
    a PL/pgSQL loop on the server (no client, no network): the events' INSERT alone,
    then with 0005's function, 0006's 3-array one, and 0006's recent(n). The array
    kinds get their event hashes computed in SQL here (Python does that in the app),
    so their figures include that hashing; recent(n) hashes inside the function."""
    state = (
        '\'{"occurred_on":"2015-09-28","actor":"Taliban","source":{"name":'
        '"Reuters","url":null,"quote":null},"note":null,"report_id":null,'
        '"reported_by":"bench","timestamp":"2026-11-26T04:00:00.000000+00:00"}\'::bytea'
    )
    kinds = ("insert only", "0005 loop", "0006 arrays", "0006 recent")
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    loads = [load()]
    for _ in range(reps):
        for kind in kinds:
            schema = f"bench_audit_srv_{uuid.uuid4().hex[:8]}"
            Dateline(Settings(database_url=url, postgres_schema=schema), migrate=True).close()
            s = f'"{schema}"'
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(_loop_function(schema))
                    call = {
                        "insert only": "NULL",
                        "0005 loop": f"{s}.dateline_audit_append_0005(c, v, h)",
                        "0006 arrays": f"{s}.dateline_audit_append(c, v, h)",
                        "0006 recent": f"{s}.dateline_audit_append_recent({batch})",
                    }[kind]
                    hashing = "NULL::bytea"
                    if kind in ("0005 loop", "0006 arrays"):
                        hashing = f"sha256({audit_store.SQL_EVENT_HASH_INPUT})"
                    conn.execute(f"""CREATE FUNCTION {s}.bench_run() RETURNS float
                      LANGUAGE plpgsql AS $$
                      DECLARE t0 timestamptz; i int; c uuid[]; v bigint[]; h bytea[];
                      BEGIN
                        t0 := clock_timestamp();
                        FOR i IN 1..{appends} LOOP
                          WITH ins AS (INSERT INTO {s}.dateline_events
                              (originator_id, originator_version, topic, state)
                              SELECT gen_random_uuid(), 1, 'City.Reported', {state}
                              FROM generate_series(1, {batch}) RETURNING *)
                          SELECT array_agg(originator_id), array_agg(originator_version),
                                 array_agg({hashing}) INTO c, v, h FROM ins;
                          PERFORM {call};
                        END LOOP;
                        RETURN extract(epoch from clock_timestamp() - t0) * 1000 / {appends};
                      END $$""")
                    row = conn.execute(f"SELECT {s}.bench_run()").fetchone()
                    assert row is not None
                    runs[kind].append(float(row[0]))
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {s} CASCADE")
    loads.append(load())
    medians = {k: statistics.median(v) for k, v in runs.items()}
    base = medians["insert only"]
    return {
        "batch": batch,
        "appends_per_run": appends,
        "server_ms_per_append": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "medians_ms": {k: round(v, 3) for k, v in medians.items()},
        "log_ms_per_event": {
            k: round((v - base) / batch, 4) for k, v in medians.items() if k != "insert only"
        },
        "load_avg_1m": loads,
    }


def receipt_figure(settings: Settings, n: int, key_dir: Path) -> dict[str, Any]:
    """Status answers (read model) for random seeded cities and dates, with and without
    a receipt, alternating call by call: per-call latency percentiles. A checkpoint is
    signed first; the first receipt builds its tree (once per process)."""
    import random

    from dateline.api.schemas import StatusOut, dump
    from dateline.infrastructure.audit import checkpoints, receipts
    from dateline.seeds.loader import load_seeds

    key = key_dir / f"bench-{uuid.uuid4().hex[:8]}.key"
    checkpoints.generate_key(key)
    settings = settings.model_copy(update={"audit_key_file": key})
    app = Dateline(settings, migrate=True)
    rng = random.Random(9)
    try:
        load_seeds(app)
        from dateline.infrastructure.audit.service import take_checkpoint

        take_checkpoint(settings.store(), key, app.clock())  # as the service's checkpointer would
        slugs = app.city_slugs()
        plain: list[float] = []
        signed: list[float] = []
        loads = [load()]
        for i in range(2 * n):
            slug = rng.choice(slugs)
            day = date(2015, 1, 1) + timedelta(days=rng.randrange(2500))
            started = time.perf_counter()
            answer = dump(StatusOut, app.read_model.status(slug, day, app.clock()))
            if i % 2:
                receipts.issue(app, answer, app.clock())
                signed.append(time.perf_counter() - started)
            else:
                plain.append(time.perf_counter() - started)
        loads.append(load())
    finally:
        app.close()
        key.unlink()
    from bench.stats import summarize

    with_r, without_r = summarize(signed), summarize(plain)
    return {
        "calls_each": n,
        "with_receipt": with_r,
        "without_receipt": without_r,
        "p99_added_ms": round(with_r["p99_ms"] - without_r["p99_ms"], 3),
        "target": "p99 <= 5 ms",
        "load_avg_1m": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--append-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/audit-latest.json"))
    parser.add_argument("--append-threads", type=int, default=16)
    parser.add_argument("--receipts", type=int, default=2000, help="status calls of each kind")
    parser.add_argument(
        "--only",
        choices=("verify", "append", "append-server", "receipt", "checkpoint"),
        help="measure one figure",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "cpus": os.cpu_count()}
    schemas = [f"bench_audit_{uuid.uuid4().hex[:8]}" for _ in range(4)]
    try:
        if args.only in (None, "verify"):
            settings = Settings(database_url=args.url, postgres_schema=schemas[0])
            results["verify"] = verify_figure(
                args.url, schemas[0], settings, args.events, args.reps
            )
            print(json.dumps(results["verify"], indent=2), flush=True)
        if args.only in (None, "checkpoint"):
            settings = Settings(database_url=args.url, postgres_schema=schemas[3])
            results["checkpoint"] = checkpoint_figure(args.url, schemas[3], settings, args.events)
            print(json.dumps(results["checkpoint"], indent=2), flush=True)
        if args.only in (None, "append"):
            settings = Settings(database_url=args.url, postgres_schema=schemas[1])
            results["append"] = append_figure(
                settings, args.append_seconds, args.reps, args.append_threads
            )
            print(json.dumps(results["append"], indent=2), flush=True)
        if args.only in (None, "append-server"):
            results["append_server"] = append_server_figure(args.url)
            print(json.dumps(results["append_server"], indent=2), flush=True)
        if args.only in (None, "receipt"):
            settings = Settings(database_url=args.url, postgres_schema=schemas[2])
            results["receipt"] = receipt_figure(settings, args.receipts, args.out.parent)
            print(json.dumps(results["receipt"], indent=2), flush=True)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
