"""Request ids on the answer and on every log line of a request; Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dateline.api.observability import configure_logging
from dateline.infrastructure import recorders
from tests.api.conftest import Api


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_request_id_is_echoed_or_made(api: Api) -> None:
    given = api.get("/health", headers={"X-Request-ID": "desk-42.a"})
    assert given.headers["x-request-id"] == "desk-42.a"
    made = api.get("/health")
    other = api.get("/health")
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != other.headers["x-request-id"]
    refused = api.get("/health", headers={"X-Request-ID": "two words" + "x" * 200})
    assert refused.headers["x-request-id"] != "two words" + "x" * 200
    assert len(refused.headers["x-request-id"]) == 32


def test_every_line_of_a_request_is_json_with_its_id(api: Api, restore_logging: None) -> None:
    stream = io.StringIO()  # not a terminal: JSON lines
    configure_logging(stream)
    api.get("/cities/nowhere/status", headers={"X-Request-ID": "req-1"})
    api.get("/health", headers={"X-Request-ID": "req-2"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line["request_id"] in ("req-1", "req-2")]
    access = {line["request_id"]: line for line in mine if line["logger"] == "api.access"}
    assert access["req-1"]["route"] == "/cities/{slug}/status"
    assert (access["req-1"]["status"], access["req-1"]["path"]) == (404, "/cities/nowhere/status")
    assert access["req-2"]["message"].startswith("GET /health 200 ")
    assert {"timestamp", "level", "message"} <= set(access["req-2"])
    logging.getLogger("elsewhere").info("outside any request")
    outside = json.loads(stream.getvalue().splitlines()[-1])
    assert (outside["message"], outside["request_id"]) == ("outside any request", "-")


def test_on_a_terminal_lines_are_for_people(api: Api, restore_logging: None) -> None:
    stream = Terminal()
    configure_logging(stream)
    api.get("/health", headers={"X-Request-ID": "req-3"})
    (line,) = [line for line in stream.getvalue().splitlines() if "[req-3]" in line]
    assert " INFO api.access [req-3] GET /health 200 " in line
    assert not line.startswith("{")


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_appends_conflicts_and_lag(api: Api) -> None:
    def value(scraped: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        return float(scraped.get((name, tuple(sorted(labels.items()))), 0.0))

    before = scrape(api)
    api.register("metricville")
    for _ in range(3):
        assert api.get("/cities/metricville/status").status_code == 200
    assert api.report("metricville", "Captured", "2021-08-08", "Taliban").status_code == 201
    again = api.report("metricville", "Captured", "2021-08-09", "Taliban")
    assert again.status_code == 409
    after = scrape(api)

    status = {"method": "GET", "route": "/cities/{slug}/status", "status": "200"}
    assert (
        value(after, "dateline_http_requests_total", **status)
        - value(before, "dateline_http_requests_total", **status)
        == 3
    )
    timed = {"method": "GET", "route": "/cities/{slug}/status"}
    count = "dateline_http_request_duration_seconds_count"
    assert value(after, count, **timed) - value(before, count, **timed) == 3
    events = "/cities/{slug}/events"
    appends = "dateline_appends_total"
    assert value(after, appends, route=events) - value(before, appends, route=events) == 1
    assert value(after, appends, route="/cities") - value(before, appends, route="/cities") == 1
    conflicts = "dateline_conflicts_total"
    assert (
        value(after, conflicts, route=events, status="409")
        - value(before, conflicts, route=events, status="409")
        == 1
    )
    assert value(after, "dateline_read_model_lag_events") == 0
    labels = {dict(key[1]).get("route", "") for key in after}
    assert not any("metricville" in route for route in labels)


def test_read_model_lag_counts_events_not_yet_projected(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.register("laggard")
    lag = ("dateline_read_model_lag_events", ())
    assert scrape(api)[lag] == 0
    # Appends by a version that wrote no read-model rows: the next start catches up.
    monkeypatch.setattr(recorders, "ROWS_KWARG", "not-a-kwarg")
    api.report("laggard", "Captured", "2021-08-08", "Taliban")
    api.report("laggard", "Retaken", "2021-08-09", "Afghan government")
    assert scrape(api)[lag] == 2
    monkeypatch.undo()
    api.dateline.projection.catch_up()
    assert scrape(api)[lag] == 0
