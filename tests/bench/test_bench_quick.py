"""The benchmark harness runs and its jobs really run (no timing is asserted: timings are for `make bench`).

Needs only the main venv (jobengine and RQ SimpleWorker; the Dramatiq and Celery peers live in .venv-bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_produces_figures_and_stores_every_result(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--only",
                           "throughput-jobengine,throughput-rq-simple,latency,latency-rq-simple", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["failed"] == [] and doc["skipped"] == []
    results = {r["engine"]: r for r in doc["results"]}
    for engine in ("jobengine, 1 worker", "RQ SimpleWorker"):
        assert results[engine]["value"] > 0
        assert results[engine]["results_stored"] == results[engine]["jobs"], results[engine]
    # the latency runs check every result's value themselves (a wrong or missing one fails the scenario)
    for engine in ("jobengine API p50", "jobengine API p99", "RQ SimpleWorker p50", "RQ SimpleWorker p99"):
        assert results[engine]["value"] > 0 and results[engine]["jobs"] > 0
    assert not any(row["verdict"] for row in doc["table"]), "a quick run judges no target"
