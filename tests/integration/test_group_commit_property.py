"""Property: concurrent commands through the writer's group commit behave as some
serial order, and every caller's answer matches the log.

Threads send a random mix of reports (some repeating a report_id, some breaking
the rules, some backdated) and retractions to two cities at once, through one
application whose writer commits them in small groups. Then:
- the log is a serial execution: replaying its events in version order through
  a fresh City, as commands, accepts every one and ends in the same state;
- every caller's answer matches the log: a created event is in the log with the
  caller's facts; a repeat names the stored event with that report_id; a
  refusal is what the rules say on some prefix of that city's log (the state
  the command was decided on), and nothing of it was written;
- the read model equals the aggregate fold (`check`), as it does inline.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dateline.domain.city import City, city_id
from dateline.domain.control import EventType, Source
from dateline.domain.errors import DomainError
from dateline.infrastructure.application import Dateline
from dateline.infrastructure.settings import Settings

ACTORS = ("Afghan government", "Taliban", "National Resistance Front")
START = date(2015, 1, 1)
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)
examples = itertools.count()

# (city, action, event type, day offset, actor, report id or None, retraction target)
Command = tuple[int, str, EventType, int, str, str | None, int]
commands = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1]),
        st.sampled_from(["report"] * 5 + ["retract"]),
        st.sampled_from(list(EventType)),
        st.integers(0, 400),
        st.sampled_from(ACTORS),
        st.sampled_from([None, None, "r1", "r2", "r3"]),
        st.integers(2, 8),
    ),
    min_size=4,
    max_size=24,
)


def register(app: Dateline, slug: str) -> None:
    app.register_city(
        slug=slug, name=slug, province="P", country="X", lat=0, lon=0, population=None,
        initial_controller=ACTORS[0], tracked_since=START,
    )  # fmt: skip


def send(app: Dateline, slug: str, command: Command) -> Any:
    """The caller's answer: an AppendResult, or the domain error it got."""
    _, action, kind, offset, actor, report_id, target = command
    try:
        if action == "report":
            return app.report(
                slug, kind, occurred_on=START + timedelta(days=offset), actor=actor,
                source=Source("s"), reported_by="r", report_id=report_id,
            )  # fmt: skip
        return app.retract(slug, f"{slug}-{target}", reason="r", retracted_by="e")
    except DomainError as refused:
        return refused


def replay(slug: str, log: list[Any], upto: int) -> City:
    """A fresh city given, as commands, the first `upto` events of the log."""
    city = City.register(
        slug=slug, name=slug, province="P", country="X", lat=0, lon=0, population=None,
        initial_controller=ACTORS[0], tracked_since=START, recorded_at=RECORDED,
    )  # fmt: skip
    for event in log[1:upto]:
        if event.type == "Retracted":
            city.retract(event.retracts, reason="r", retracted_by="e", recorded_at=RECORDED)
        else:
            outcome = city.report(
                EventType(event.type), occurred_on=event.occurred_on, actor=event.actor,
                source=Source("s"), reported_by="r", recorded_at=RECORDED,
                report_id=event.report_id,
            )  # fmt: skip
            assert outcome.created and outcome.event_id == event.id
    return city


def refused_on_some_prefix(slug: str, log: list[Any], command: Command, error: Exception) -> bool:
    for upto in range(1, len(log) + 1):
        city = replay(slug, log, upto)
        _, action, kind, offset, actor, report_id, target = command
        try:
            if action == "report":
                city.report(
                    kind, occurred_on=START + timedelta(days=offset), actor=actor,
                    source=Source("s"), reported_by="r", recorded_at=RECORDED,
                    report_id=report_id,
                )  # fmt: skip
            else:
                city.retract(f"{slug}-{target}", reason="r", retracted_by="e", recorded_at=RECORDED)
        except DomainError as again:
            if type(again) is type(error) and str(again) == str(error):
                return True
    return False


def test_concurrent_commands_are_some_serial_order(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    app = Dateline(
        make_settings(store_kind, writer_batch_size=4, snapshot_interval=4), migrate=True
    )

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(script=commands, threads=st.integers(2, 5))
    def check(script: list[Command], threads: int) -> None:
        prefix = f"g{next(examples)}"
        slugs = [f"{prefix}-0", f"{prefix}-1"]
        for slug in slugs:
            register(app, slug)
        answers: list[tuple[Command, Any]] = []
        lock = threading.Lock()

        def run(part: list[Command]) -> None:
            for command in part:
                answer = send(app, slugs[command[0]], command)
                with lock:
                    answers.append((command, answer))

        workers = [threading.Thread(target=run, args=(script[n::threads],)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        logs = {slug: app.history(slug) for slug in slugs}
        for slug, log in logs.items():
            final = replay(slug, log, len(log))  # the log is a serial execution
            assert final.intervals() == app.find_city(slug).intervals()  # type: ignore[union-attr]
        for command, answer in answers:
            slug = slugs[command[0]]
            log = logs[slug]
            by_id = {e.id: e for e in log}
            if isinstance(answer, DomainError):
                assert refused_on_some_prefix(slug, log, command, answer), (command, answer)
                continue
            stored = by_id[answer.event.id]
            if command[1] == "report":
                assert (stored.type, stored.occurred_on, stored.actor) == (
                    command[2].value,
                    START + timedelta(days=command[3]),
                    command[4],
                )
                if not answer.created:
                    assert stored.report_id == command[5]
            else:
                assert stored.retracts == f"{slug}-{command[6]}" and answer.created
        created = [a.event.id for _, a in answers if not isinstance(a, DomainError) and a.created]
        assert len(created) == len(set(created))  # no event answered as created twice
        written = [e.id for log in logs.values() for e in log[1:]]
        assert sorted(written) == sorted(created)  # every event written had its caller
        assert app.check_read_model(samples=30)[0] == []

    try:
        check()
    finally:
        app.close()


def test_commands_that_wait_together_are_committed_together(
    make_settings: Callable[..., Settings], store_kind: str
) -> None:
    """While the writer is busy, commands queue; it then commits them in one
    transaction, each caller still getting its own answer (one of them refused)."""
    app = Dateline(make_settings(store_kind), migrate=True)
    try:
        slugs = [f"q-{n}" for n in range(6)]
        for slug in slugs:
            register(app, slug)
        busy, release = threading.Event(), threading.Event()

        def hold_the_writer(city: City | None) -> Any:
            busy.set()
            release.wait(30)
            raise DomainError("held")  # refused: nothing written

        def hold() -> None:
            with contextlib.suppress(DomainError):
                app.writer.submit(slugs[0], city_id(slugs[0]), hold_the_writer)

        holder = threading.Thread(target=hold)
        holder.start()
        assert busy.wait(30)
        answers: dict[str, Any] = {}
        refused: Command = (0, "report", EventType.CAPTURED, 5, ACTORS[0], None, 0)
        queued = [
            threading.Thread(
                target=lambda slug=slug: answers.__setitem__(
                    slug, send(app, slug, (0, "report", EventType.CAPTURED, 10, ACTORS[1], None, 0))
                )
            )
            for slug in slugs
        ] + [
            threading.Thread(  # breaks a rule: Afghan government already holds the city
                target=lambda: answers.__setitem__("refused", send(app, slugs[0], refused))
            )
        ]
        for thread in queued:
            thread.start()
        deadline = time.monotonic() + 30
        while app.writer.queued() < len(queued) and time.monotonic() < deadline:
            time.sleep(0.01)
        before = app.writer.batches
        release.set()
        for thread in [holder, *queued]:
            thread.join(30)
        assert isinstance(answers.pop("refused"), DomainError)
        assert all(a.created for a in answers.values()), answers
        assert app.writer.batches == before + 1  # one transaction for all six
        assert app.writer.largest_batch == len(slugs)
    finally:
        app.close()
