"""One writer per process: every write is decided and committed on one thread, in groups.

Callers hand a command to the writer and wait for its own outcome. The writer
takes every command waiting at that moment (up to a batch size), decides each
on the state the ones before it left, and commits all their events, index rows
and read-model rows in one transaction: one table lock, one commit (group
commit). A rule violation or a repeat is answered without touching the batch;
a conflict with another process's append re-decides the batch once on fresh
state, then each command alone, so one hot city never fails the others.

The writer keeps the cities it decided in memory (an LRU of aggregates), so a
write does not reload its city. A city another process appended to meanwhile
collides on (city, version) and is reloaded: the cache needs no fast-forward
query on the happy path. On SQLite this thread is the process's only writer,
so concurrent reporters never meet "database is locked".
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError

from dateline.domain.city import City, ReportOutcome
from dateline.domain.errors import DomainError
from dateline.domain.log import LoggedEvent, read_log

log = logging.getLogger("dateline.writer")

WAIT_LIMIT = 60.0  # seconds a caller waits for the writer before giving up
# How long a busy writer waits for more commands before committing a batch:
# a fraction of a commit, so the batch grows without making anyone wait long.
GATHER_SECONDS = 0.002


class ConcurrencyConflict(Exception):
    """Other writers kept moving the city on; the append was not made."""

    def __init__(self, slug: str, attempts: int) -> None:
        super().__init__(
            f"{slug} changed {attempts} times while this write was being decided; "
            "nothing was written, try again"
        )
        self.slug = slug


class StoreUnavailable(Exception):
    """The database did not answer in time (lock timeout, connection lost)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the event store is unavailable, nothing was written: {detail}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What a command decided: the outcome, the city's version after it, and
    the new event as logged (None for a repeat: the original is read back)."""

    outcome: ReportOutcome
    version: int
    event: LoggedEvent | None
    city: City


# A command: given the city (None if not registered), return it (or the new
# city) with the decision; domain errors are raised, and answered as they are.
Decide = Callable[[City | None], tuple[City, ReportOutcome]]


@dataclass(eq=False)
class Command:
    slug: str
    city_id: UUID
    decide: Decide
    done: threading.Event = field(default_factory=threading.Event)
    result: Decision | BaseException | None = None
    degrade: str | None = None  # the read model refused its rows: write it degraded

    def finish(self, result: Decision | BaseException) -> None:
        self.result = result
        self.done.set()


_STOP = object()


class Store(Protocol):
    """What the writer needs from the application."""

    def save_decided(self, cities: list[City], degraded: dict[UUID, str]) -> None:
        """One transaction for the cities' new events (and their rows)."""

    def load_city(self, cid: UUID) -> City | None:
        """The city as stored; None if it was never registered."""

    def read_model_refusal(self, error: BaseException) -> str | None:
        """Why a read-model table refused an append's rows; None for a log conflict."""


class CityWriter:
    def __init__(self, app: Store, *, batch_size: int, cache_size: int, attempts: int) -> None:
        self.app = app
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.attempts = attempts
        self._cities: OrderedDict[UUID, City] = OrderedDict()  # writer thread only
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dateline-writer", daemon=True)
        self._thread.start()
        self.batches = 0  # committed transactions, for tests and metrics
        self.commands = 0
        self.largest_batch = 0  # most events one transaction committed

    def submit(self, slug: str, city_id: UUID, decide: Decide) -> Decision:
        command = Command(slug, city_id, decide)
        self._queue.put(command)
        if not command.done.wait(WAIT_LIMIT):
            raise StoreUnavailable(f"the writer did not answer within {WAIT_LIMIT:.0f} s")
        assert command.result is not None
        if isinstance(command.result, BaseException):
            raise command.result
        return command.result

    def queued(self) -> int:
        """Commands waiting for the writer (approximate: for tests and metrics)."""
        return self._queue.qsize()

    def forget(self, city_id: UUID) -> None:
        """Drop a cached city (another path wrote it): the next command reloads it."""
        self._queue.put(("forget", city_id))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=WAIT_LIMIT)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        concurrent = False  # the last batch held several commands
        while True:
            batch, stop = self._take(self._queue.get(), gather=concurrent)
            if batch:
                concurrent = len(batch) > 1
                try:
                    self._commit(batch)
                except BaseException as error:  # never leave a caller waiting
                    log.exception("writer failed on a batch")
                    for command in batch:
                        if not command.done.is_set():
                            command.finish(error)
            if stop:
                return

    def _take(self, item: Any, *, gather: bool) -> tuple[list[Command], bool]:
        """The commands waiting now, up to the batch size. When writers are busy
        (the last batch held several), wait up to GATHER_SECONDS for the callers
        just answered to send their next command: one commit for them all."""
        batch: list[Command] = []
        deadline = time.monotonic() + (GATHER_SECONDS if gather else 0.0)
        while True:
            if item is _STOP:
                return batch, True
            if isinstance(item, tuple):
                self._cities.pop(item[1], None)
            else:
                batch.append(item)
            if len(batch) >= self.batch_size:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch, False
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return batch, False

    def _commit(self, batch: list[Command]) -> None:
        for attempt in range(self.attempts):
            changed: dict[UUID, City] = {}
            results: list[Decision | BaseException] = []
            for command in batch:
                results.append(self._decide(command, changed))
            if changed:
                degraded = {
                    c.city_id: c.degrade for c in batch if c.degrade and c.city_id in changed
                }
                try:
                    self.app.save_decided(list(changed.values()), degraded)
                except IntegrityError as error:
                    self._evict(changed)
                    refused = self.app.read_model_refusal(error)
                    if len(batch) > 1:
                        for command in batch:  # isolate the command that collides
                            self._commit([command])
                        return
                    if refused is not None and batch[0].degrade is None:
                        batch[0].degrade = refused  # the log is fine: write it, flag the city
                        continue
                    # Another process appended to this city: back off (exponential,
                    # jittered) so two writers on one hot city do not keep colliding.
                    time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
                    continue
                except (OperationalError, InterfaceError, psycopg.OperationalError) as error:
                    self._evict(changed)
                    unavailable = StoreUnavailable(str(error).strip().splitlines()[0])
                    self._finish(batch, results, unavailable)
                    self._fail_waiting(unavailable)
                    return
                except BaseException as error:
                    self._evict(changed)
                    self._finish(batch, results, error)
                    return
                for cid, city in changed.items():
                    self._remember(cid, city)
                self.batches += 1
                written = sum(isinstance(r, Decision) and r.outcome.created for r in results)
                self.largest_batch = max(self.largest_batch, written)
            self.commands += len(batch)
            self._finish(batch, results, None)
            return
        for command in batch:
            self._cities.pop(command.city_id, None)
        self._finish(batch, [ConcurrencyConflict(c.slug, self.attempts) for c in batch], None)

    def _fail_waiting(self, unavailable: StoreUnavailable) -> None:
        """The commands that queued while the store did not answer waited that
        long already: answer them now rather than after an attempt of their own."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Command):
                item.finish(unavailable)
            else:
                self._queue.put(item)  # a stop or forget request: keep it
                return

    def _decide(self, command: Command, changed: dict[UUID, City]) -> Decision | BaseException:
        try:
            city = changed.get(command.city_id) or self._city(command.city_id)
            before = city.version if city is not None else 0
            city, outcome = command.decide(city)
        except (DomainError, ValueError) as refused:
            return refused
        except (OperationalError, InterfaceError, psycopg.OperationalError) as error:
            return StoreUnavailable(str(error).strip().splitlines()[0])
        except Exception as error:  # an undecodable city: this command only
            log.exception("could not decide a command on %s", command.slug)
            return error
        event = None
        if outcome.created:
            changed[command.city_id] = city
            new = [e for e in city.pending_events if e.originator_version > before]
            event = read_log(city.slug, new[-1:])[0]
        return Decision(outcome, city.version, event, city)

    def _city(self, cid: UUID) -> City | None:
        city = self._cities.get(cid)
        if city is not None:
            self._cities.move_to_end(cid)
            return city
        city = self.app.load_city(cid)
        if city is not None:
            self._remember(cid, city)
        return city

    def _remember(self, cid: UUID, city: City) -> None:
        self._cities[cid] = city
        self._cities.move_to_end(cid)
        while len(self._cities) > self.cache_size:
            self._cities.popitem(last=False)

    def _evict(self, changed: dict[UUID, City]) -> None:
        # Their state holds events that were not stored.
        for cid in changed:
            self._cities.pop(cid, None)

    @staticmethod
    def _finish(
        batch: list[Command],
        results: list[Decision | BaseException],
        failure: BaseException | None,
    ) -> None:
        for command, result in zip(batch, results, strict=True):
            if failure is not None and isinstance(result, Decision) and result.outcome.created:
                command.finish(failure)
            else:
                command.finish(result)
