"""The service's own checkpoints: one after every N new events or M minutes.

A daemon thread polls the log's head; `tick()` does one round (tests call it).
Failures are kept in `last_error`, never raised into the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dateline.infrastructure.audit.checkpoints import Checkpoint, load_private_key
from dateline.infrastructure.audit.service import take_checkpoint
from dateline.infrastructure.audit.store import AuditDatabase
from dateline.infrastructure.settings import StoreConfig

POLL_SECONDS = 5.0


class Checkpointer:
    def __init__(
        self,
        store: StoreConfig,
        key_file: Path,
        every_events: int,
        every_minutes: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        load_private_key(key_file)  # a key that cannot sign stops the start-up, not later
        self.store = store
        self.key_file = key_file
        self.every_events = every_events
        self.every_seconds = every_minutes * 60
        self.clock = clock
        self.monotonic = monotonic
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_at = monotonic()
        db = AuditDatabase(store)
        with db.connect() as conn:
            latest = db.checkpoints(conn, latest_only=True)
        self._last_size = latest[0].size if latest else 0

    def tick(self) -> Checkpoint | None:
        """Sign a checkpoint if enough events or time have gone by since the last."""
        db = AuditDatabase(self.store)
        with db.connect() as conn:
            size, _ = db.head(conn)
        if size <= self._last_size:
            return None
        due_by_time = self.monotonic() - self._last_at >= self.every_seconds
        if size - self._last_size < self.every_events and not due_by_time:
            return None
        made = take_checkpoint(self.store, self.key_file, self.clock())
        self._last_size, self._last_at = made.size, self.monotonic()
        return made

    def _run(self) -> None:
        poll = min(POLL_SECONDS, self.every_seconds)
        while not self._stop.wait(poll):
            try:
                self.tick()
                self.last_error = None
            except Exception as error:  # keep serving; the next round tries again
                self.last_error = str(error).splitlines()[0] if str(error) else repr(error)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dateline-checkpointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
