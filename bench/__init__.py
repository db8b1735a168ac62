"""Dateline benchmark (issue 4): `python -m bench.run --help`, see docs/performance.md."""
