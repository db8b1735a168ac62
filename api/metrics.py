"""Prometheus metrics, served at GET /metrics (text exposition format).

- `dateline_http_requests_total{method, route, status}` and
  `dateline_http_request_duration_seconds{method, route}`: every request, by
  route template (`/cities/{slug}/status`), so a city's slug never becomes a
  label; requests that match no route are `route="unmatched"`.
- `dateline_appends_total{route}`: events written through the API (201 on a
  POST: a registration, a report, a retraction); a repeat (200) writes nothing
  and is not counted.
- `dateline_conflicts_total{route, status}`: writes refused because of the
  record: 409 (a rule of control, an existing slug, or a write that lost every
  retry) and 412 (If-Match names an older version).
- `dateline_read_model_lag_events`: events recorded but not yet in the read
  model, measured when /metrics is read.

The metrics live in this process's default registry. With several worker
processes each would count only its own requests: prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, a fresh directory per start) would
then be needed, and is not set up, since `dateline serve` runs one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from dateline.infrastructure.application import Dateline

UNMATCHED = "unmatched"
CONFLICT_STATUSES = frozenset({409, 412})

REQUESTS = Counter(
    "dateline_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "dateline_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["method", "route"],
)
APPENDS = Counter("dateline_appends_total", "Events written through the API", ["route"])
CONFLICTS = Counter(
    "dateline_conflicts_total", "Writes refused because of the record", ["route", "status"]
)
READ_MODEL_LAG = Gauge(
    "dateline_read_model_lag_events", "Events recorded but not yet in the read model"
)


def route_of(scope: Mapping[str, Any]) -> str:
    """The template of the route that served the request (set by the router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)
    if method == "POST" and status == 201:
        APPENDS.labels(route).inc()
    elif method == "POST" and status in CONFLICT_STATUSES:
        CONFLICTS.labels(route, str(status)).inc()


def read_model_lag(app: Dateline) -> int:
    recorded = app.recorder.max_notification_id() or 0
    return max(0, recorded - app.read_model.position())


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latencies, appends, conflicts, read-model lag",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text format"}},
)
def metrics(request: Request) -> Response:
    READ_MODEL_LAG.set(read_model_lag(request.app.state.dateline))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
