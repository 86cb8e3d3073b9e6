"""Chaos, CI-sized: tests/chaos/run.py with 1,500 jobs at 50/s (about 35 s of submitting) to 3 workers while
workers are SIGKILLed (pod death) and SIGTERMed (scale-down), the API restarts, and Redis restarts gracefully
once and hard once. Every accepted job must end in a terminal state, and a job may have run more than once
only for a reason the harness can name (its worker was SIGKILLed mid-run, its drain deadline passed, or its
outcome fell in the fsync window of the hard Redis kill). `make chaos` runs the same with 20,000 jobs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis

from tests.chaos.run import CHART_VALUES, DURABILITY_SETTINGS, ROOT, WORKER_FAULTS, Cluster, Config, run

JOBS = int(os.environ.get("JOBENGINE_CHAOS_JOBS", "1500"))
RATE = float(os.environ.get("JOBENGINE_CHAOS_RATE", "50"))
RECOVERY_BOUND = 60.0  # seconds: every recovery here takes a few; only a hang (or a lost job) reaches this


def chart_redis_settings() -> dict[str, str]:
    """The durability settings of the chart's redis.conf, its template filled from values.yaml."""
    conf = (ROOT / "charts/jobengine/templates/redis/configmap.yaml").read_text()
    conf = conf.replace("{{ .Values.redis.appendfsync }}", str(CHART_VALUES["redis"]["appendfsync"]))
    found = dict(re.findall(rf"^\s*({'|'.join(DURABILITY_SETTINGS)})\s+(\S+)\s*$", conf, re.M))
    assert set(found) == set(DURABILITY_SETTINGS), f"the chart's redis.conf no longer sets {DURABILITY_SETTINGS}"
    return found


def test_the_chaos_run_uses_the_charts_redis_persistence(tmp_path: Path) -> None:
    """The guarantee is proven for the settings the chart ships: the Redis the harness really starts is asked."""
    cluster = Cluster(Config(), tmp_path)
    cluster.redis.start()
    try:
        client = redis.Redis.from_url(cluster.url)
        live = {k: v for name in DURABILITY_SETTINGS for k, v in client.config_get(name).items()}
        client.close()
    finally:
        cluster.redis.stop()
    assert live == chart_redis_settings() == {"appendonly": "yes", "appendfsync": "everysec",
                                              "maxmemory-policy": "noeviction"}


@pytest.mark.timeout(240 + JOBS // 10)
def test_no_accepted_job_is_lost_under_chaos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = run(Config(jobs=JOBS, rate=RATE, log_dir=str(tmp_path)))
    print("\n" + report.text())
    # every job the client sent was accepted (retried through 503s and restarts with its Idempotency-Key)...
    assert report.accepted == JOBS
    # ...and ended: none still waiting or running, none whose hash vanished, none lost to the fsync window
    assert report.never_finished == [], f"accepted jobs that never ended: {report.unfinished_states}"
    assert report.lost_to_fsync == [], "jobs lost although submissions paused for the fsync"
    assert report.states == {"finished": JOBS}
    # every ended job ran (no outcome without a run), and a second run only where a fault explains it
    assert report.never_ran == []
    assert report.unexplained == [], "jobs run more than once without a killed worker or the fsync window"
    assert report.most_runs <= 1 + len(report.faults)
    assert report.redis_config == chart_redis_settings()  # after its graceful and hard restarts too

    kinds = sorted(f.kind for f in report.faults)
    assert kinds == sorted(["sigkill", "sigkill", "sigterm", "sigterm", "api", "redis-graceful", "redis-hard"])
    worker_faults = [f for f in report.faults if f.kind in WORKER_FAULTS]
    assert any(f.held for f in worker_faults), "every worker fault hit an idle worker: the run proved nothing"
    for fault in worker_faults:  # the jobs a stopped or killed worker held ended elsewhere, in bounded time
        assert fault.recovery["replacement ready"] is not None and fault.recovery["replacement ready"] < RECOVERY_BOUND
        ended = fault.recovery["its jobs ended"]
        assert ended is None or ended < RECOVERY_BOUND, fault
    for fault in report.faults:  # the API and Redis came back: submissions accepted and jobs ending again
        if fault.kind not in WORKER_FAULTS:
            assert all(v is not None and v < RECOVERY_BOUND for v in fault.recovery.values()), fault
