"""What limits each figure that misses its target (profiles: docs/performance.md).

These are the findings of py-spy / pyinstrument profiles of this benchmark on
the 2-core machine; the JSON of a run carries the text next to the figure it
explains, and the prototypes' measured effect is under "prototypes".
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
        "The read model's catch-up after every import batch takes ~85% of the import: per "
        "event it decodes the event again, reloads the city once per 500-event batch "
        "(repository.get), folds the city's whole timeline (City.intervals, O(events in "
        "the city)) and writes period and fact rows with executemany. Without it the same "
        "import ran at 3,400-3,900 events/s (ratio ~0.08). The rest: the library's save "
        "(JSON encoding, composite-type adaptation, index rows) and snapshots taken by "
        "re-reading each city from the database (take_snapshot -> repository.get)."
    ),
    "status_inprocess": (
        "One round trip to PostgreSQL over loopback TCP (~0.3 ms) plus row-to-dataclass "
        "conversion; the p99 tail is scheduling noise on 2 shared cores."
    ),
    "status_http": (
        "GET /cities/{slug}/status answers from the aggregate (Dateline.status: index "
        "lookup, snapshot, replay of up to 49 events, fold: ~1.2-1.4 ms in process), not "
        "from the read model; and one uvicorn process (h11, asyncio loop, access log) "
        "spends ~2/3 of its CPU in the ASGI stack, FastAPI and the thread-pool hand-off. "
        "Both share one GIL and 2 cores with PostgreSQL and the load generator."
    ),
    "map_geojson": (
        "Per city: the all-cities query and one StatusView per row (~60%), pydantic "
        "validation of every feature's properties in api.routers.status.feature_collection "
        "(~25%), json.dumps (~13%). Building the GeoJSON in PostgreSQL (json_agg) removes "
        "the per-row Python work: see prototypes.map_geojson_in_sql."
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
        "project_aggregate (projector_func removes it: prototypes.replay_projector_func)."
    ),
}
