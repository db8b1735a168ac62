"""The benchmark's quick size runs end to end and reports every figure (no timing asserted).

Run by `make test` after the product's suite: bench/ is outside the product."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run
from bench.figures import KEYS
from tests.conftest import POSTGRES_URL, require_postgres

pytestmark = pytest.mark.postgres


def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    require_postgres()
    out = tmp_path / "quick.json"
    args = ["--quick", "--seconds", "1", "--samples", "100", "--postgres-url", POSTGRES_URL]
    assert run.main([*args, "--out", str(out)]) == 0

    result = json.loads(out.read_text())
    assert list(result["figures"]) == KEYS
    for key, figure in result["figures"].items():
        if figure["status"] == "measured":
            assert figure["value"], key
            assert figure["met"] in (True, False, None), key
        else:
            assert figure["status"].startswith("not measured: "), key
    assert result["size"]["events_loaded"] == 5_000
    assert result["machine"]["cpu_count"]
    assert result["machine"]["postgres"]["synchronous_commit"]


def test_import_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """A tiny archive: written, imported, COPYed, checked; every figure reported."""
    require_postgres()
    from bench import import_bench

    out = tmp_path / "import.json"
    import_bench.main(
        [
            "--events",
            "300",
            "--cities",
            "12",
            "--rounds",
            "1",
            "--check",
            "--url",
            POSTGRES_URL,
            "--workdir",
            str(tmp_path / "archive"),
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    (round_,) = result["rounds"]
    assert round_["import"]["events"] == round_["copy"]["rows"] == 300
    assert result["figures"]["ratio_median"] > 0
    assert result["checks"]["audit_intact"] is True
    assert result["checks"]["read_model_differences"] == 0
