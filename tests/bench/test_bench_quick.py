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
                           "throughput-jobengine,throughput-rq-simple", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    results = {r["engine"]: r for r in doc["results"]}
    assert doc["failed"] == []
    for engine in ("jobengine, 1 worker", "RQ SimpleWorker"):
        assert results[engine]["value"] > 0
        assert results[engine]["results_stored"] == results[engine]["jobs"], results[engine]
