"""Chaos harness: real processes (redis-server, the API, N workers) on 127.0.0.1, jobs submitted through the
API at a steady rate, while a bounded chaos loop kills and restarts things the way Kubernetes does:

- ``sigkill``: a worker's whole process group is SIGKILLed (pod death, OOM kill, node loss), a new one starts;
- ``sigterm``: a worker is SIGTERMed (scale-down, rollout) and drains, a new one starts;
- ``api``: the API is SIGTERMed and started again on the same port (a rollout with one replica);
- ``redis-graceful``: redis-server is SIGTERMed (it writes its AOF) and started again;
- ``redis-hard``: redis-server is SIGKILLed and started again from its AOF.

    python -m tests.chaos.run --jobs 20000 --workers 3 --rate 100        # make chaos
    python -m tests.chaos.run --jobs 1500 --rate 50                      # what CI runs (tests/chaos)

Redis runs like the chart's: ``appendonly yes``, ``appendfsync everysec``. A hard kill may lose what was
written in the last second before it. Submissions pause ``--fsync-pause`` seconds (1.5) before the hard kill
so that every accepted job is on disk. A job accepted within ``FSYNC_WINDOW`` seconds before the kill whose
hash is gone afterwards is reported apart ("lost to the fsync window"); it still fails the run, since the
pause should have covered it. ``--fsync always`` runs Redis with ``appendfsync always`` and no pause.

Every run of the ``chaos`` job type (tests/support/jobs.py) appends '<worker supervisor pid> <start time>'
to ``test:runs:<job id>``. A job that ran more than once is *explained* when each run but the last is:
  1. on a worker SIGKILLed after that run started (killed mid-run: the outcome never reached Redis), or
  2. on a worker SIGTERMed whose drain deadline passed while that run went on (its log says so for the
     job id: the run was stopped and the job given back), or
  3. a run that ended, or was still going, within ``FSYNC_WINDOW`` seconds before the hard Redis kill
     (its outcome, written after the last fsync, was lost with the kill).
Anything else is *unexplained* and fails the run. The report also gives, per fault, the time to recover:
for a worker fault, until every job the worker held had ended elsewhere; for the API and Redis, until the
first submission was accepted again and the first job ended again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from jobengine.jobdata import parse_ts
from jobengine.redis_conn import EmbeddedRedis, free_port
from tests.conftest import Proc, key_entry, service_env, write_key_file

KEY = "chaos.chaos-secret-0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
# The chart's Redis settings are the ones under test: appendfsync (values.yaml) and the policy its configmap sets
CHART_VALUES = yaml.safe_load((ROOT / "charts/jobengine/values.yaml").read_text())
CHART_FSYNC = CHART_VALUES["redis"]["appendfsync"]
TERMINAL = ("finished", "failed", "canceled")
FSYNC_WINDOW = 2.5  # seconds before a hard kill whose writes everysec may lose (1 s + a late fsync + margin)
WORKER_FAULTS = ("sigkill", "sigterm")
DURABILITY_SETTINGS = ("appendonly", "appendfsync", "maxmemory-policy")  # what the guarantee rests on


@dataclass
class Config:
    jobs: int = 1500
    workers: int = 3
    rate: float = 50.0  # submissions per second, steady
    submitters: int = 4  # client threads sharing the rate (a single sequential client tops out ~100/s)
    seed: int = 7
    job_seconds: float = 0.01  # most jobs
    long_every: int = 0  # every n-th job is long, so SIGKILLs and drains catch jobs mid-run; 0: 2 x rate
    long_seconds: float = 1.5
    drain_seconds: float = 1.0  # JOBENGINE_DRAIN_SECONDS of the workers: shorter than long jobs
    worker_faults: int = 0  # random SIGKILL/SIGTERM faults besides the fixed ones; 0: one per 20 s of submitting
    fsync: str = CHART_FSYNC  # the chart's appendfsync (everysec)
    fsync_pause: float = 1.5
    settle_timeout: float = 60.0  # after the last submission: give up once no job has ended for this long
    log_dir: str = ""


@dataclass
class Fault:
    kind: str
    at: float  # wall time the fault was injected
    done: float = 0.0  # wall time the fault's action (incl. restart) completed
    pid: int = 0  # the worker's supervisor pid, for worker faults
    held: list[str] = field(default_factory=list)  # jobs the worker held (running or claimed) at the fault
    detail: str = ""
    recovery: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Report:
    config: dict[str, Any]
    accepted: int
    states: dict[str, int]
    never_finished: list[str]
    unfinished_states: dict[str, int]  # status of the never-finished ones ('missing': no hash)
    lost_to_fsync: list[str]
    never_ran: list[str]  # ended (finished or failed) with no run recorded: an outcome without a run
    run_more_than_once: int
    most_runs: int  # the most runs of any one job
    explained_by: dict[str, int]
    unexplained: list[tuple[str, list[str]]]
    faults: list[Fault]
    submit_seconds: float
    total_seconds: float
    submit_retries: int
    submit_answers: dict[str, int]
    redis_config: dict[str, str]  # the durability settings of the Redis the run ended on (after its restarts)

    @property
    def ok(self) -> bool:
        return not self.never_finished and not self.unexplained and not self.lost_to_fsync and not self.never_ran

    def text(self) -> str:
        c = self.config
        lines = [
            f"chaos: {c['jobs']} jobs at {c['rate']:g}/s to {c['workers']} workers, seed {c['seed']}, "
            f"appendfsync {c['fsync']}, drain {c['drain_seconds']:g} s, claims expire after 3 s; jobs of "
            f"{c['job_seconds'] * 1000:g} ms, every {c['long_every'] or max(2, int(2 * c['rate']))}th "
            f"{c['long_seconds']:g} s",
            f"  submitted in {self.submit_seconds:.1f} s ({self.accepted / max(self.submit_seconds, 1e-9):.0f}/s), "
            f"settled {self.total_seconds:.1f} s after the start; answers {self.submit_answers}, "
            f"{self.submit_retries} retried submissions",
            "  faults (t from start; time to recover):",
        ]
        for f in self.faults:
            rec = ", ".join(f"{k} {v:.1f} s" if v is not None else f"{k} -" for k, v in f.recovery.items())
            who = f" pid {f.pid}" if f.pid else ""
            lines.append(f"    +{f.at - self.config['started_at']:6.1f} s  {f.kind:<15}{who:<11} {f.detail:<26} {rec}")
        lines += [
            f"  jobs accepted:         {self.accepted}",
            f"  jobs by terminal state: {', '.join(f'{k} {v}' for k, v in sorted(self.states.items()))}",
            f"  jobs never finished:   {len(self.never_finished)} {self.unfinished_states or ''}",
            f"  jobs lost to the fsync window of the hard Redis kill: {len(self.lost_to_fsync)}",
            f"  jobs ended without a run recorded: {len(self.never_ran)}",
            f"  jobs run more than once: {self.run_more_than_once} (at most {self.most_runs} runs) "
            f"(explained: {', '.join(f'{k} {v}' for k, v in self.explained_by.items()) or 'none needed'}; "
            f"unexplained {len(self.unexplained)})",
            f"  RESULT: {'PASS' if self.ok else 'FAIL'}",
        ]
        for job_id, runs in self.unexplained[:10]:
            lines.append(f"    unexplained {job_id}: {runs}")
        for job_id in self.never_finished[:10]:
            lines.append(f"    never finished {job_id}")
        for job_id in self.never_ran[:10]:
            lines.append(f"    ended without a run {job_id}")
        return "\n".join(lines)


class Cluster:
    """redis-server, one API and N workers as child processes, every one on 127.0.0.1."""

    def __init__(self, config: Config, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        # appendonly yes like the chart's configmap; a later --appendfsync overrides EmbeddedRedis' everysec
        extra = ["--maxmemory-policy", "noeviction", "--appendfsync", config.fsync]
        self.redis = EmbeddedRedis(directory=str(log_dir / "redis"), extra_args=extra, appendonly=True)
        self.keys_file = write_key_file(log_dir / "keys.json", [key_entry(KEY)])
        self.api_port = free_port()
        self.api: Proc | None = None
        self.workers: list[Proc] = []
        self.stopped: list[Proc] = []
        self.seq = 0

    @property
    def url(self) -> str:
        return self.redis.url

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.url, JOBENGINE_DRAIN_SECONDS=str(self.config.drain_seconds), **extra)

    def start_worker(self) -> Proc:
        self.seq += 1
        name = f"chaos-worker-{self.seq}"
        proc = Proc([sys.executable, "-m", "jobengine_worker"], self.env(JOBENGINE_WORKER_NAME=name),
                    self.log_dir / f"{name}.log", name=name)
        self.workers.append(proc)
        return proc

    def wait_worker_ready(self, proc: Proc, timeout: float = 30) -> None:
        with redis.Redis.from_url(self.url, socket_timeout=2) as client:
            proc.wait_ready(lambda: client.exists(f"rq:worker:{proc.name}"), f"worker {proc.name}", timeout)

    def held_by(self) -> dict[str, list[str]]:
        """Jobs each worker holds now (running or claimed for its batch), from the StartedJobRegistries."""
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            members = [m for q in client.smembers("rq:queues")
                       for m in client.zrange(b"rq:wip:" + q.removeprefix(b"rq:queue:"), 0, -1)]
            ids = [m.decode().split(":", 1)[0] for m in members]
            with client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hget(f"rq:job:{job_id}", "worker_name")
                names = pipe.execute()
        finally:
            client.close()
        held: dict[str, list[str]] = {}
        for job_id, name in zip(ids, names):
            if name:
                held.setdefault(name.decode(), []).append(job_id)
        return held

    def start_api(self) -> None:
        env = self.env(JOBENGINE_API_PORT=str(self.api_port), JOBENGINE_AUTH="on",
                       JOBENGINE_API_KEYS_FILE=str(self.keys_file))
        n = sum(1 for p in self.log_dir.glob("api-*.log"))
        self.api = Proc([sys.executable, "-m", "jobengine_api"], env, self.log_dir / f"api-{n}.log", name="api")
        with httpx.Client(base_url=self.api_base, timeout=2) as client:
            self.api.wait_ready(lambda: client.get("/healthz").status_code == 200, "API")

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def stop(self) -> None:
        for proc in [*self.workers, *self.stopped, *([self.api] if self.api else [])]:
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - stop everything whatever happens
                pass
        self.redis.stop()


class Submitter:
    """Threads submitting at a steady overall rate; retries on 503 and connection errors with the same key."""

    def __init__(self, cluster: Cluster, config: Config) -> None:
        self.cluster = cluster
        self.config = config
        self.next_index = 0
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()
        self.in_flight = 0
        self.paused_for = 0.0  # seconds of pauses, added to the schedule so the rate stays steady after one
        self.accepted: dict[int, tuple[str, float]] = {}  # index -> (job id, wall time of the 202/200)
        self.answers: dict[str, int] = {}
        self.retries = 0
        self.failures: list[str] = []
        self.start = 0.0

    def job(self, index: int) -> dict[str, Any]:
        every = self.config.long_every or max(2, int(2 * self.config.rate))
        long = index % every == every - 1
        seconds = self.config.long_seconds if long else self.config.job_seconds
        return {"type": "chaos", "payload": {"seconds": seconds, "counter_url": self.cluster.url}}

    def pause(self) -> float:
        """Stop submitting; returns once no submission is in flight."""
        self.open.clear()
        began = time.monotonic()
        while True:
            with self.lock:
                if self.in_flight == 0:
                    return began
            time.sleep(0.01)

    def resume(self, began: float) -> None:
        with self.lock:
            self.paused_for += time.monotonic() - began
        self.open.set()

    def run_thread(self) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=self.cluster.api_base, headers=headers, timeout=10) as client:
            while True:
                self.open.wait()
                with self.lock:
                    index = self.next_index
                    if index >= self.config.jobs:
                        return
                    self.next_index += 1
                    due = self.start + self.paused_for + index / self.config.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.open.wait()
                with self.lock:
                    self.in_flight += 1
                try:
                    self.submit(client, index)
                finally:
                    with self.lock:
                        self.in_flight -= 1

    def submit(self, client: httpx.Client, index: int) -> None:
        body, key = self.job(index), uuid.uuid4().hex
        deadline = time.monotonic() + 90
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            if attempt > 1:
                with self.lock:
                    self.retries += 1
            try:
                resp = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
                answer = str(resp.status_code)
            except httpx.TransportError as exc:
                resp, answer = None, type(exc).__name__
            with self.lock:
                self.answers[answer] = self.answers.get(answer, 0) + 1
            if resp is not None and resp.status_code in (200, 202):
                with self.lock:
                    self.accepted[index] = (resp.json()["id"], time.time())
                return
            if resp is not None and resp.status_code not in (503, 429):
                self.failures.append(f"job {index}: {resp.status_code} {resp.text[:300]}")
                return
            retry_after = float(resp.headers.get("Retry-After", "0.05")) if resp is not None else 0.05
            time.sleep(min(retry_after, 0.2))
        self.failures.append(f"job {index}: no answer within 90 s")

    def accepted_after(self, t: float) -> float | None:
        """Wall time of the first acceptance after t."""
        with self.lock:
            times = [at for _, at in self.accepted.values() if at > t]
        return min(times) if times else None


def build_schedule(config: Config, rng: random.Random) -> list[tuple[float, str]]:
    """Faults at fractions of the submission window: the fixed ones once each, random worker faults besides."""
    duration = config.jobs / config.rate
    fixed = [(0.15, "sigkill"), (0.25, "sigterm"), (0.40, "api"), (0.52, "redis-graceful"), (0.68, "sigkill"),
             (0.78, "redis-hard"), (0.88, "sigterm")]
    extra = config.worker_faults or max(0, int(duration // 20) - 3)
    times = sorted(rng.uniform(0.05, 0.95) for _ in range(extra))
    schedule = [(duration * f, kind) for f, kind in fixed]
    schedule += [(duration * f, rng.choice(WORKER_FAULTS)) for f in times]
    return sorted(schedule)


def inject(kind: str, cluster: Cluster, submitter: Submitter, rng: random.Random, config: Config) -> Fault:
    fault = Fault(kind, time.time())
    if kind in WORKER_FAULTS:
        # a random worker, preferring the busy ones: killing an idle worker tests little
        held = cluster.held_by()
        busy = [i for i, p in enumerate(cluster.workers) if held.get(p.name)]
        victim = cluster.workers.pop(rng.choice(busy) if busy else rng.randrange(len(cluster.workers)))
        fault.pid, fault.detail, fault.held = victim.pid, victim.name, held.get(victim.name, [])
        fault.at = time.time()
        if kind == "sigkill":
            os.killpg(victim.pid, signal.SIGKILL)
        else:
            victim.signal(signal.SIGTERM)
        cluster.stopped.append(victim)
        replacement = cluster.start_worker()
        cluster.wait_worker_ready(replacement)
        fault.detail += f" -> {replacement.name}"
    elif kind == "api":
        assert cluster.api is not None
        old = cluster.api
        cluster.stopped.append(old)
        old.stop()
        cluster.start_api()
    elif kind == "redis-graceful":
        cluster.redis.restart()
    elif kind == "redis-hard":
        pause = config.fsync_pause if config.fsync == "everysec" else 0.0
        began = submitter.pause() if pause else 0.0  # without a pause: killed amid submissions
        time.sleep(pause)  # everysec: what was accepted before this is on disk now
        fault.at = time.time()
        cluster.redis.stop(hard=True)
        fault.detail = f"(submissions paused {pause:g} s)" if pause else f"(appendfsync {config.fsync}, no pause)"
        time.sleep(0.5)
        cluster.redis.start()
        if pause:
            submitter.resume(began)
    fault.done = time.time()
    return fault


def worker_killed_jobs(log_text: str) -> set[str]:
    """Job ids a worker gave back after its drain deadline passed (stopped mid-run)."""
    ids = set()
    for line in log_text.splitlines():
        if "drain deadline passed" in line:
            try:
                ids.add(json.loads(line)["job_id"])
            except (ValueError, KeyError):
                pass
    return ids


def run(config: Config) -> Report:
    rng = random.Random(config.seed)
    log_dir = Path(config.log_dir or tempfile.mkdtemp(prefix="jobengine-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(config, log_dir)
    started_at = time.time()
    try:
        cluster.redis.start()
        for _ in range(config.workers):
            cluster.start_worker()
        for proc in cluster.workers:
            cluster.wait_worker_ready(proc)
        cluster.start_api()
        submitter = Submitter(cluster, config)
        schedule = build_schedule(config, rng)
        started_at = time.time()
        submitter.start = time.monotonic()
        threads = [threading.Thread(target=submitter.run_thread, daemon=True) for _ in range(config.submitters)]
        for t in threads:
            t.start()
        faults: list[Fault] = []
        for offset, kind in schedule:  # the chaos loop: bounded by the schedule
            delay = submitter.start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            faults.append(inject(kind, cluster, submitter, rng, config))
            print(f"chaos: +{faults[-1].at - started_at:.1f} s {kind} {faults[-1].detail}", flush=True)
        for t in threads:
            t.join()
        submit_seconds = time.monotonic() - submitter.start
        if submitter.failures:
            raise RuntimeError(f"submissions failed: {submitter.failures[:5]}")
        return settle(config, cluster, submitter, faults, started_at, submit_seconds)
    finally:
        cluster.stop()


def settle(config: Config, cluster: Cluster, submitter: Submitter, faults: list[Fault], started_at: float,
           submit_seconds: float) -> Report:
    client = redis.Redis.from_url(cluster.url)
    indices = sorted(submitter.accepted)
    accepted = [submitter.accepted[i] for i in indices]
    ids = [job_id for job_id, _ in accepted]

    def statuses() -> list[bytes | None]:
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(f"rq:job:{job_id}", "status")
            return pipe.execute()

    # a backlog may still be draining (a loaded machine): wait as long as jobs keep ending
    last, progress_at = -1, time.monotonic()
    while True:
        current = statuses()
        waiting = len([s for s in current if s is not None and s.decode() not in TERMINAL])
        if waiting != last:
            last, progress_at = waiting, time.monotonic()
        if not waiting or time.monotonic() - progress_at > config.settle_timeout:
            break
        time.sleep(0.5)
    total_seconds = time.time() - started_at
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "status", "ended_at")
            pipe.lrange(f"test:runs:{job_id}", 0, -1)
        replies = pipe.execute()
    hard = [f.at for f in faults if f.kind == "redis-hard"]
    sigkilled = {f.pid: f.at for f in faults if f.kind == "sigkill"}
    drained = {f.pid: worker_killed_jobs(p.log()) for f in faults if f.kind == "sigterm"
               for p in cluster.stopped if p.pid == f.pid}
    states: dict[str, int] = {}
    never, lost, unexplained, never_ran = [], [], [], []
    unfinished: dict[str, int] = {}
    explained_by = {"sigkill": 0, "drain-deadline": 0, "redis-hard": 0}
    duplicates = 0
    job_seconds: dict[str, float] = {}
    ended: dict[str, float] = {}
    runs_of: dict[str, list[tuple[int, float]]] = {}
    for index, ((job_id, at), (fields, runs)) in enumerate(zip(accepted, zip(replies[0::2], replies[1::2]))):
        status, ended_at = fields
        job_seconds[job_id] = submitter.job(indices[index])["payload"]["seconds"]
        if status is None:  # the hash is gone: lost with the hard kill if accepted just before it
            if any(h - FSYNC_WINDOW <= at <= h for h in hard):
                lost.append(job_id)
            else:
                never.append(job_id)
                unfinished["missing"] = unfinished.get("missing", 0) + 1
            continue
        status_s = status.decode()
        if status_s not in TERMINAL:
            never.append(job_id)
            unfinished[status_s] = unfinished.get(status_s, 0) + 1
            continue
        states[status_s] = states.get(status_s, 0) + 1
        if ended_at and (ts := parse_ts(ended_at)):
            ended[job_id] = ts.timestamp()
        parsed = [(int(pid), float(t)) for pid, t in (run.decode().split() for run in runs)]
        runs_of[job_id] = parsed
        if not parsed and status_s != "canceled":
            never_ran.append(job_id)
        if len(parsed) > 1:
            duplicates += 1
            reasons = []
            for pid, t in parsed[:-1]:
                if pid in sigkilled and t <= sigkilled[pid]:
                    reasons.append("sigkill")
                elif job_id in drained.get(pid, set()):
                    reasons.append("drain-deadline")
                elif any(h - FSYNC_WINDOW - job_seconds[job_id] <= t <= h for h in hard):
                    reasons.append("redis-hard")
                else:
                    reasons.append("")
            if all(reasons):
                for reason in set(reasons):
                    explained_by[reason] += 1
            else:
                unexplained.append((job_id, [run.decode() for run in runs]))
    measure_recovery(faults, submitter, runs_of, ended)
    redis_config = {k: v for name in DURABILITY_SETTINGS for k, v in client.config_get(name).items()}
    client.close()
    cfg = asdict(config) | {"started_at": started_at}
    return Report(config=cfg, accepted=len(accepted), states=states, never_finished=never,
                  unfinished_states=unfinished, lost_to_fsync=lost, never_ran=never_ran,
                  run_more_than_once=duplicates, most_runs=max((len(r) for r in runs_of.values()), default=0), explained_by={k: v for k, v in explained_by.items() if v},
                  unexplained=unexplained, faults=faults, submit_seconds=submit_seconds, total_seconds=total_seconds,
                  submit_retries=submitter.retries, submit_answers=dict(sorted(submitter.answers.items())),
                  redis_config=redis_config)


def measure_recovery(faults: list[Fault], submitter: Submitter, runs_of: dict[str, list[tuple[int, float]]],
                     ended: dict[str, float]) -> None:
    """Per fault: worker faults, until every job the worker was running had ended (elsewhere or after a drain);
    API and Redis, until a submission is accepted again and until a job ends again."""
    ends = sorted(ended.values())
    for f in faults:
        if f.kind in WORKER_FAULTS:
            held = [j for j in f.held if ended.get(j, 0) > f.at]
            f.recovery["replacement ready"] = f.done - f.at
            f.recovery["its jobs ended"] = (max(ended[j] for j in held) - f.at) if held else None
            f.detail += f" ({len(f.held)} held)"
        else:
            first_202 = submitter.accepted_after(f.done)
            f.recovery["submissions back"] = (first_202 - f.at) if first_202 else None
            first_end = next((e for e in ends if e > f.done), None)
            f.recovery["jobs ending"] = (first_end - f.at) if first_end else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value)
    parser.add_argument("--json", default="", help="write the report as JSON here too")
    ns = parser.parse_args(argv)
    out = ns.json
    config = Config(**{k: v for k, v in vars(ns).items() if k != "json"})
    if config.fsync not in ("everysec", "always"):
        parser.error("--fsync is everysec or always")
    report = run(config)
    print(report.text(), flush=True)
    if out:
        Path(out).write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
