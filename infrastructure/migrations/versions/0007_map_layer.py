"""The map layer in one pass: each period row carries its causing event's source,
each city its latest version, and PostgreSQL finds every city's row by one index.

`GET /status?format=geojson` needs, for each of N cities, the row containing
(as_of, known_at), the source of the event that made that state and the city's
version as known at known_at. Before this migration that was a scan of every
period row and every fact row, then one probe per city for the sources.

- `dateline_control_periods.source_name`, `.source_url`: the source of the
  event in `event_id`, copied when the row is inserted (a row is never edited
  but to close it, and sources are never edited).
- `dateline_rm_cities.version`, `.version_at`: the city's highest version in
  the read model and when it was recorded. Known at T >= version_at, the
  city's version is `version`; only an earlier T probes the facts.
- PostgreSQL: a GiST index on each row's rectangle as a `box` (x: days since
  2000-01-01, y: seconds since the epoch; an open end far away). "Every row
  containing (D, T)" is one index search returning about one row per city. A
  box, not a pair of ranges, because the planner estimates `box @> box` at a
  fixed small selectivity and so uses the index, where its estimate for two
  range predicates about now was half the table and it chose a scan. Plain
  column types, no extension.

Revision ID: 0007_map_layer
Revises: 0006_audit_cities
"""

from __future__ import annotations

from alembic import op

from dateline.infrastructure.settings import StoreConfig

revision = "0007_map_layer"
down_revision = "0006_audit_cities"
branch_labels = None
depends_on = None

# The index expression; the query's (tables.PERIOD_BOX) must be the same text.
BOX = (
    "box(point((valid_from - DATE '2000-01-01')::float8, "
    "extract(epoch FROM known_from - TIMESTAMPTZ 'epoch')::float8), "
    "point(coalesce(valid_to - DATE '2000-01-01', 1000000000)::float8, "
    "coalesce(extract(epoch FROM known_to - TIMESTAMPTZ 'epoch'), 1e15)::float8))"
)


def upgrade(store: StoreConfig) -> None:
    sqlite = store.kind == "sqlite"
    t = "" if sqlite else f'"{store.schema}".'
    instant = "TEXT" if sqlite else "timestamptz"
    periods, facts, cities = (
        f"{t}dateline_control_periods",
        f"{t}dateline_event_facts",
        f"{t}dateline_rm_cities",
    )
    for column in ("source_name", "source_url"):
        op.execute(f"ALTER TABLE {periods} ADD COLUMN {column} TEXT")
    op.execute(f"ALTER TABLE {cities} ADD COLUMN version BIGINT NOT NULL DEFAULT 0")
    op.execute(f"ALTER TABLE {cities} ADD COLUMN version_at {instant}")
    if sqlite:
        # The event's version: the digits after the slug's last '-'.
        version = "CAST(replace(p.event_id, rtrim(p.event_id, '0123456789'), '') AS INTEGER)"
        op.execute(f"""UPDATE {periods} AS p SET
            source_name = (SELECT f.source_name FROM {facts} f
                WHERE f.city_id = p.city_id AND f.version = {version}),
            source_url = (SELECT f.source_url FROM {facts} f
                WHERE f.city_id = p.city_id AND f.version = {version})
            WHERE p.event_id IS NOT NULL""")
        op.execute(f"""UPDATE {cities} AS c SET
            version = (SELECT MAX(f.version) FROM {facts} f WHERE f.city_id = c.city_id),
            version_at = (SELECT f.recorded_at FROM {facts} f WHERE f.city_id = c.city_id
                ORDER BY f.version DESC LIMIT 1)
            WHERE EXISTS (SELECT 1 FROM {facts} f WHERE f.city_id = c.city_id)""")
        return
    op.execute(f"""UPDATE {periods} p SET source_name = f.source_name, source_url = f.source_url
        FROM {facts} f WHERE p.event_id IS NOT NULL AND f.source_name IS NOT NULL
        AND f.city_id = p.city_id
        AND f.version = substring(p.event_id FROM '(\\d+)$')::bigint""")
    op.execute(f"""UPDATE {cities} c SET version = f.version, version_at = f.recorded_at
        FROM (SELECT DISTINCT ON (city_id) city_id, version, recorded_at FROM {facts}
              ORDER BY city_id, version DESC) f
        WHERE f.city_id = c.city_id""")
    op.execute(f"CREATE INDEX dateline_control_periods_point ON {periods} USING gist ({BOX})")


def downgrade(store: StoreConfig) -> None:
    sqlite = store.kind == "sqlite"
    t = "" if sqlite else f'"{store.schema}".'
    if not sqlite:
        op.execute(f"DROP INDEX IF EXISTS {t}dateline_control_periods_point")
    for column in ("source_name", "source_url"):
        op.execute(f"ALTER TABLE {t}dateline_control_periods DROP COLUMN {column}")
    for column in ("version", "version_at"):
        op.execute(f"ALTER TABLE {t}dateline_rm_cities DROP COLUMN {column}")
