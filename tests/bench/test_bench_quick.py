"""The benchmark harness runs and its jobs really run (no timing is asserted: timings are for `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_produces_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--only", "jobengine,rq-simple,latency",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["engine"]: r["value"] for r in json.loads(out.read_text())["results"]}
    assert results["jobengine, 1 worker"] > 0 and results["RQ SimpleWorker"] > 0
    assert 0 < results["jobengine API p50"] <= results["jobengine API p99"]
