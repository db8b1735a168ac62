"""What limits each figure that misses its target (profiles: docs/performance.md).

These are the findings of py-spy / pyinstrument profiles of this benchmark on
the 2-core machine; the JSON of a run carries the text next to the figure it
explains; the measured effect of each design change is in docs/performance.md.
"""

from __future__ import annotations

LIMITS: dict[str, str] = {
    "append_inprocess": (
        "Serialisation, not CPU: every append takes the library's LOCK TABLE ... IN "
        "EXCLUSIVE MODE for its transaction, then the read model's synchronous catch-up "
        "runs under a process-wide lock and a FOR UPDATE on its tracking row, so the 16 "
        "writers queue behind one append transaction and one catch-up at a time (p50 is "
        "~16x the single-writer latency). Per command, single-threaded: catch-up ~50%, "
        "save ~25%, reload of the city ~15% (a third of it the library's per-event "
        "runtime Protocol assert), re-reading the saved event ~4%, the domain decision ~3%. "
        "Raw INSERTs commit concurrently and share WAL flushes."
    ),
    "append_http": (
        "The in-process append path (see append_inprocess) plus one uvicorn process: "
        "the event loop, FastAPI/Starlette and the thread-pool hand-off share one GIL "
        "with the append work, on 2 cores shared with PostgreSQL and the load generator."
    ),
    "bulk_import": (
        "The read model's catch-up after every import batch takes ~86% of the import: per "
        "event it decodes the event again, reloads the city once per 500-event batch "
        "(repository.get), folds the city's whole timeline (City.intervals, O(events in the "
        "city)) and writes period and fact rows with executemany. The library's save alone "
        "(JSON encoding, composite-type adaptation, index rows, snapshots taken by re-reading "
        "each city) ran at ~4,800 events/s in the 300,000-event run (ratio ~0.07)."
    ),
    "status_inprocess": (
        "One round trip to PostgreSQL over loopback TCP (~0.3 ms) plus row-to-dataclass "
        "conversion; the p99 tail is scheduling noise on 2 shared cores."
    ),
    "status_http": (
        "The server, not the query: read_model.status costs ~0.3-0.6 ms in process, but one "
        "uvicorn process (h11, asyncio loop, access log, as `dateline serve` runs it) spends "
        "most of its CPU in the ASGI stack, FastAPI and the thread-pool hand-off, under one "
        "GIL, on 2 cores shared with PostgreSQL and the load generator. Two workers with "
        "httptools + uvloop and no access log served ~2.6x more (measured in the issue 4 run,"
        "http_server_variants)."
    ),
    "map_geojson": (
        "The all-cities query (~55%: it scans every period row and aggregates every fact "
        "row up to known_at, because no index serves a point-in-rectangle query across "
        "cities), one StatusView per row, pydantic re-validation of every feature in "
        "api.routers.status.feature_collection (~25%) and json.dumps (~15%). A GiST index on "
        "(daterange(valid_from, valid_to), tstzrange(known_from, known_to)) turns the scan "
        "into a bitmap scan of the ~10,000 matching rows; json_agg in PostgreSQL removes the "
        "per-row Python work (measured in the issue 4 run,map_geojson_in_sql)."
    ),
    "projection_rebuild": (
        "Per event: a fold of the city's whole timeline (City.intervals, O(events in the "
        "city), ~50% of the time), a repository.get of every city once per 500-event batch "
        "(~17%), executemany of period and fact rows (~12%), the diff of open periods. "
        "Reading the same rows raw costs ~7 us per event."
    ),
    "replay_snapshot": (
        "A snapshot holds the city's whole state (timeline, every control event, every "
        "report id), so decoding it grows with the city; then up to 49 events after it, "
        "each paying the library's ~18 us runtime Protocol isinstance assert in "
        "project_aggregate (projector_func removes it)."
    ),
}
