"""The bitemporal read model: control as of a date, as known at a moment, by lookup.

- `projection`: from events and what they changed to rows (no SQL);
- `tables`: the tables, and the SQL each store speaks to them;
- `queries`: the reads;
- `catch_up`: applying what the log holds beyond the read model's position
  (start-up after an upgrade, rebuilds), containing what cannot be applied;
- `check`: the read model against the aggregate fold.
"""
