"""How long-running work reports how far it has got, without knowing who listens.

The command line draws a bar from these calls; the work itself imports no
progress library. A reporter is called with the units done since its last call
(events, cities) and the total where one is cheap to know (else None); the
first call may report 0 done, to announce the total before the work starts.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int | None], None]
