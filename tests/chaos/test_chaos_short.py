"""Chaos, CI-sized: tests/chaos/run.py with 1,500 jobs at 50/s (about 35 s of submitting) to 3 workers while
workers are SIGKILLed (pod death) and SIGTERMed (scale-down), the API restarts, and Redis restarts gracefully
once and hard once. Every accepted job must end in a terminal state, and a job may have run more than once
only for a reason the harness can name (its worker was SIGKILLed mid-run, its drain deadline passed, or its
outcome fell in the fsync window of the hard Redis kill). `make chaos` runs the same with 20,000 jobs."""

from __future__ import annotations

import os

import pytest

from tests.chaos.run import Config, run


def test_the_chaos_run_uses_the_charts_redis_persistence() -> None:
    """The guarantee is proven for the setting the chart ships: AOF on, appendfsync from values.yaml, noeviction."""
    from tests.chaos.run import CHART_FSYNC, ROOT

    configmap = (ROOT / "charts/jobengine/templates/redis/configmap.yaml").read_text()
    assert "appendonly yes" in configmap and "appendfsync {{ .Values.redis.appendfsync }}" in configmap
    assert "maxmemory-policy noeviction" in configmap
    assert CHART_FSYNC == "everysec" and Config().fsync == CHART_FSYNC

JOBS = int(os.environ.get("JOBENGINE_CHAOS_JOBS", "1500"))
RATE = float(os.environ.get("JOBENGINE_CHAOS_RATE", "50"))


@pytest.mark.timeout(240 + JOBS // 10)
def test_no_accepted_job_is_lost_under_chaos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = run(Config(jobs=JOBS, rate=RATE, log_dir=str(tmp_path)))
    print("\n" + report.text())
    assert report.accepted == JOBS
    assert report.never_finished == [], "accepted jobs that never reached a terminal state"
    assert report.lost_to_fsync == [], "jobs lost although submissions paused for the fsync"
    assert report.states == {"finished": JOBS}
    assert report.unexplained == [], "jobs run more than once without a killed worker or the fsync window"
    kinds = sorted(f.kind for f in report.faults)
    assert kinds == sorted(["sigkill", "sigkill", "sigterm", "sigterm", "api", "redis-graceful", "redis-hard"])
    for fault in report.faults:  # every fault was recovered from
        if fault.kind not in ("sigkill", "sigterm"):
            assert all(v is not None for v in fault.recovery.values()), fault
