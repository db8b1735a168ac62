"""`dateline migrate` waits for a database that is still starting, for a bounded time."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator

import pytest

from dateline.api.cli import main
from dateline.infrastructure import migrations
from dateline.infrastructure.settings import StoreConfig
from tests.api.servers import free_port
from tests.conftest import POSTGRES_URL, require_postgres


class LateServer:
    """A port that refuses connections until `open()`, then forwards them to PostgreSQL."""

    def __init__(self, target: StoreConfig) -> None:
        self.target = (target.host, target.port)
        self.port = free_port()
        self.accepted = 0
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def late_server() -> Iterator[LateServer]:
    require_postgres()
    server = LateServer(StoreConfig.from_url(POSTGRES_URL))
    yield server
    server.close()


def test_migrate_retries_until_the_database_accepts(late_server: LateServer) -> None:
    store = dataclasses.replace(StoreConfig.from_url(POSTGRES_URL), port=late_server.port)
    reports: list[str] = []
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            late_server.open()  # the database comes up during the second pause

    migrations.wait_until_reachable(store, 60, report=reports.append, sleep=sleep)
    assert len(reports) == 2 and all("retrying for" in line for line in reports)
    assert "Connection refused" in reports[0]
    assert late_server.accepted == 1


def test_migrate_gives_up_after_the_configured_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATELINE_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("DATELINE_MIGRATE_RETRY_SECONDS", "0")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dateline: error: postgresql nobody@127.0.0.1")
    assert "unreachable" in err[0] and "DATELINE_MIGRATE_RETRY_SECONDS" in err[0]
