"""The `dateline` command line (entry point `api.cli:main`; `python -m api.cli`).

`runner` runs a command and reports its errors, `parser` reads the command
line, `render` prints; one module per command group: `projections`, `tokens`,
`export`, `audit`, `serve`.
"""

from dateline.api.cli.parser import parse_instant
from dateline.api.cli.runner import main

__all__ = ["main", "parse_instant"]
