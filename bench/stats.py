"""Latency summaries: percentiles by nearest rank, in milliseconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (p in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """p50 / p90 / p99 / max in ms of per-operation latencies given in seconds."""
    ordered = sorted(seconds)
    ms = [s * 1000 for s in ordered]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 4),
        "p90_ms": round(percentile(ms, 90), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "max_ms": round(ms[-1], 4) if ms else math.nan,
        "mean_ms": round(sum(ms) / len(ms), 4) if ms else math.nan,
    }


def time_calls(call: Callable[[], object], n: int, warmup: int = 0) -> list[float]:
    """Latencies (s) of `n` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else math.nan
