"""jobengine benchmarks, side by side with RQ, Dramatiq and Celery on the same machine in one run.

    python -m bench.run                       # full (make bench): median of 3, targets judged
    python -m bench.run --quick               # small counts, one run each (make bench-quick, CI)
    python -m bench.run --only throughput-jobengine,throughput-rq-simple --out /tmp/b.json
    python -m bench.run --list                # scenario keys

Every scenario gets its own fresh redis-server (127.0.0.1, free port, no persistence, same flags for
every engine); every process it starts binds 127.0.0.1 and is stopped in a finally block (Ctrl-C and
SIGTERM included); every load is bounded in count and time.

Throughput: the backlog of N trivial add(a, b) jobs is enqueued first (the same N for every engine but
stock RQ's fork-per-job Worker), then ONE worker process (or two) starts; the rate is measured by
polling the count of finished jobs every 10 ms, from the moment 1% are done to the moment all are (so
start-up and warm-up are not counted). jobengine and RQ are counted by their finished registry (results
are stored the normal way and counted afterwards); Celery stores its results in its Redis backend;
Dramatiq keeps none. Dramatiq and Celery jobs INCR a counter (they keep no registry). Peers run from
.venv-bench (bench/requirements.txt); the harness, jobengine and RQ from the main venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
MAIN_PY = sys.executable
BENCH_PY = str(ROOT / ".venv-bench" / "bin" / "python")
RESULTS: list[dict[str, Any]] = []
CHUNK = 1000  # jobs per submit_many call: the API's largest batch
MACHINE_2CORE = "machine: 2 CPU-bound processes / 1"


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBENGINE_", "OTEL_"))}
    env.update(JOBENGINE_REDIS_URL=url, BENCH_REDIS_URL=url, JOBENGINE_JOB_TYPE_MODULES="bench.jobs",
               JOBENGINE_METRICS_PORT="0", JOBENGINE_API_METRICS_PORT="0",
               JOBENGINE_ENV="development", PYTHONPATH=str(ROOT), **extra)
    return env


@contextlib.contextmanager
def fresh_redis(*extra_args: str) -> Iterator[EmbeddedRedis]:
    """A redis-server of its own on 127.0.0.1 (no AOF, no RDB), removed with its directory afterwards."""
    server = EmbeddedRedis(appendonly=False, extra_args=list(extra_args))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes appended to the yielded list are stopped on the way out, whatever happens."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        stop(procs)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def measure_drain(count: Callable[[], int], n: int, timeout: float,
                  on_progress: Callable[[int], None] | None = None, segments: int = 0) -> float:
    """Jobs/s between 1% and 100% of n done; with segments, the median rate of that many equal slices of
    the jobs (robust to another tenant's burst on a shared machine; the scale scenario compares two drains)."""
    start_at = max(1, n // 100)
    deadline = time.monotonic() + timeout
    t0 = None
    done0 = 0
    marks: list[tuple[float, int]] = []
    while True:
        done = count()
        now = time.monotonic()
        if on_progress:
            on_progress(done)
        if t0 is None and done >= start_at:
            t0, done0 = now, done
        if t0 is not None and segments and (not marks or done - marks[-1][1] >= (n - done0) / segments):
            marks.append((now, done))
        if done >= n:
            if segments and len(marks) > 2:
                if marks[-1][1] != done:
                    marks.append((now, done))
                return statistics.median((d1 - d0) / (t1 - t0_) for (t0_, d0), (t1, d1) in zip(marks, marks[1:]))
            return (n - done0) / (now - t0) if t0 and now > t0 else float("nan")
        if now > deadline:
            raise TimeoutError(f"only {done}/{n} jobs done")
        time.sleep(0.01)


def results_stored(client: redis.Redis, registry: str) -> int:
    """How many jobs of the finished registry have their result stored (RQ's result stream key)."""
    ids = [i.decode() for i in client.zrange(registry, 0, -1)]
    stored = 0
    for i in range(0, len(ids), 5000):
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids[i:i + 5000]:
                pipe.exists(f"rq:results:{job_id}")
            stored += sum(pipe.execute())
    return stored


def submit_backlog(client: redis.Redis, n: int, start: int = 0, tenant: str | None = None) -> float:
    """Submit n add jobs with Producer.submit_many (the API's enqueue script), CHUNK a call; returns the
    median of the calls' jobs/s (a pause of a busy machine's other tenants does not move it)."""
    from jobengine.catalog import discover
    from jobengine.producer import JobSpec, Producer

    producer = Producer(client, discover(["bench.jobs"]), tenant=tenant)
    rates = []
    for i in range(start, start + n, CHUNK):
        specs = [JobSpec("add", {"a": j, "b": 1}) for j in range(i, min(start + n, i + CHUNK))]
        t = time.perf_counter()
        producer.submit_many(specs)
        rates.append(len(specs) / (time.perf_counter() - t))
    return statistics.median(rates)


def start_jobengine_worker(url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen([MAIN_PY, "-m", "jobengine_worker"], env=env_for(url, JOBENGINE_WORKER_NAME=name),
                            cwd=ROOT)


def finished(client: redis.Redis) -> Callable[[], int]:
    return lambda: client.zcard("rq:finished:default")


# ----- throughput -----
def jobengine_throughput(n: int, workers: int) -> tuple[float, int]:
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, n)
        procs += [start_jobengine_worker(server.url, f"bench-{k}") for k in range(workers)]
        rate = measure_drain(finished(client), n, 600)
        return rate, results_stored(client, "rq:finished:default")


def rq_enqueue(client: redis.Redis, n: int) -> Any:
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("default", connection=client, serializer=JSONSerializer)
    for i in range(0, n, CHUNK):
        with client.pipeline() as pipe:
            queue.enqueue_many([Queue.prepare_data("bench.peers.rq_tasks.add", (j, 1), result_ttl=3600)
                                for j in range(i, min(n, i + CHUNK))], pipeline=pipe)
            pipe.execute()
    return queue


def rq_worker(url: str, worker_class: str) -> subprocess.Popen:
    return subprocess.Popen([str(Path(MAIN_PY).parent / "rq"), "worker", "-q", "-w", worker_class, "--serializer",
                             "rq.serializers.JSONSerializer", "-u", url, "default"],
                            env=env_for(url), cwd=ROOT, stdout=subprocess.DEVNULL)


def rq_throughput(n: int, worker_class: str) -> tuple[float, int]:
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        rq_enqueue(client, n)
        procs.append(rq_worker(server.url, worker_class))
        rate = measure_drain(finished(client), n, 900)
        return rate, results_stored(client, "rq:finished:default")


def peer_worker(url: str, worker_args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(BENCH_PY).parent / worker_args[0]), *worker_args[1:]], env=env_for(url),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def peer_throughput(name: str, n: int, worker_args: list[str]) -> tuple[float, int]:
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        subprocess.run([BENCH_PY, "-m", "bench.peers.enqueue", name, str(n)], env=env_for(server.url), cwd=ROOT,
                       check=True, timeout=600)
        procs.append(peer_worker(server.url, worker_args))
        rate = measure_drain(lambda: int(client.get("bench:done") or 0), n, 900)
        return rate, int(client.get("bench:done") or 0)


# ----- latency -----
def wait_api(base: str, url: str | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5) as client:
        while True:
            try:
                if client.get("/healthz").status_code == 200 and (
                        url is None or redis.Redis.from_url(url).scard("rq:workers")):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base} did not start")
            time.sleep(0.1)


def quantiles(seconds: list[float]) -> tuple[float, float]:
    xs = sorted(seconds)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
    return q(0.5), q(0.99)


def api_latency(n: int) -> tuple[float, float, float]:
    """ms from POST /v1/jobs returning to the result in hand (GET ?wait=5), p50 and p99; and the HTTP floor."""
    with fresh_redis() as server, processes() as procs:
        port = free_port()
        env = env_for(server.url, JOBENGINE_API_PORT=str(port))
        procs += [subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], env=env, cwd=ROOT),
                  subprocess.Popen([MAIN_PY, "-m", "jobengine_worker"], env=env, cwd=ROOT)]
        base = f"http://127.0.0.1:{port}"
        wait_api(base, server.url)
        floor, lat = [], []
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(n + 50):
                t = time.perf_counter()
                client.get("/healthz")
                floor.append(time.perf_counter() - t)
                job = client.post("/v1/jobs", json={"type": "add", "payload": {"a": i, "b": 1}}).json()
                t = time.perf_counter()
                body = client.get(f"/v1/jobs/{job['id']}", params={"wait": 5}).json()
                lat.append(time.perf_counter() - t)
                assert body["status"] == "finished" and body["result"] == {"sum": i + 1}, body
        p50, p99 = quantiles(lat[50:])  # the first 50 warm up
        return p50, p99, quantiles(floor[50:])[0]


def peer_latency(name: str, n: int, python: str, worker: Callable[[str], subprocess.Popen]) -> tuple[float, float]:
    """A peer's enqueue -> result in hand, measured by bench/peers/latency.py against an idle worker."""
    with fresh_redis() as server, processes() as procs:
        procs.append(worker(server.url))
        out = subprocess.run([python, "-m", "bench.peers.latency", name, str(n)], env=env_for(server.url), cwd=ROOT,
                             capture_output=True, text=True, timeout=120 + n * 2, check=True).stdout
        doc = json.loads(out.strip().splitlines()[-1])
        return doc["p50_ms"], doc["p99_ms"]


# ----- API under wrk, batch endpoint -----
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class RssSampler:
    """Peak RSS (MiB) of a process and its children, sampled every 0.1 s in a thread while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, rss_tree(self.pid))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def wrk(base: str, seconds: int, connections: int = 64) -> tuple[float, float, int]:
    """req/s, p99 ms and non-2xx count of `wrk` POSTing an add job for `seconds` (after a 1 s warm-up)."""
    script = str(ROOT / "bench" / "wrk_post_add.lua")
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", "-s", script, base], capture_output=True,
                   timeout=30, check=True)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
                          "-s", script, base], capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * _UNITS[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def api_throughput(seconds: int) -> tuple[tuple[float, float, int], tuple[float, float, int], float, int]:
    """wrk against bench/noop_app.py, then against POST /v1/jobs of the API (no worker: jobs wait).
    Also the API's peak RSS during its run, and how many jobs it really wrote."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    with fresh_redis() as server:
        noop_port, api_port = free_port(), free_port()
        with processes() as procs:
            procs.append(subprocess.Popen([MAIN_PY, "-m", "bench.noop_app"],
                                          env=env_for(server.url, BENCH_NOOP_PORT=str(noop_port)), cwd=ROOT))
            wait_api(f"http://127.0.0.1:{noop_port}")
            noop = wrk(f"http://127.0.0.1:{noop_port}", seconds)
        with processes() as procs:
            procs.append(subprocess.Popen([MAIN_PY, "-m", "jobengine_api"],
                                          env=env_for(server.url, JOBENGINE_API_PORT=str(api_port)), cwd=ROOT))
            wait_api(f"http://127.0.0.1:{api_port}")
            with RssSampler(procs[0].pid) as rss:
                api = wrk(f"http://127.0.0.1:{api_port}", seconds)
        written = redis.Redis.from_url(server.url).llen("rq:queue:default")
        return api, noop, rss.peak, written


def batch_throughput(requests: int, clients: int = 2) -> tuple[float, int, float, int]:
    """jobs/s through POST /v1/jobs:batch, 1,000 add jobs a request, `clients` concurrent keep-alive clients;
    the API's peak RSS meanwhile and the jobs really in the queue afterwards."""
    with fresh_redis() as server, processes() as procs:
        port = free_port()
        procs.append(subprocess.Popen([MAIN_PY, "-m", "jobengine_api"],
                                      env=env_for(server.url, JOBENGINE_API_PORT=str(port)), cwd=ROOT))
        base = f"http://127.0.0.1:{port}"
        wait_api(base)
        body = json.dumps({"jobs": [{"type": "add", "payload": {"a": j, "b": 1}} for j in range(CHUNK)]})
        headers = {"Content-Type": "application/json"}
        accepted = [0] * clients
        errors: list[BaseException] = []

        def run(k: int, count: int) -> None:
            try:
                with httpx.Client(base_url=base, timeout=30) as client:
                    for _ in range(count):
                        resp = client.post("/v1/jobs:batch", content=body, headers=headers)
                        assert resp.status_code in (200, 202, 207), resp.text[:300]
                        accepted[k] += resp.json()["accepted"]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        with httpx.Client(base_url=base, timeout=30) as warm:  # warm-up, not counted
            warm.post("/v1/jobs:batch", content=body, headers=headers).raise_for_status()
        threads = [threading.Thread(target=run, args=(k, requests // clients), daemon=True) for k in range(clients)]
        with RssSampler(procs[0].pid) as rss:
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join(300)
            elapsed = time.perf_counter() - t
        if errors:
            raise errors[0]
        queued = redis.Redis.from_url(server.url).llen("rq:queue:default") - CHUNK
        return sum(accepted) / elapsed, sum(accepted), rss.peak, queued


# ----- scale and memory -----
def rss_tree(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def keyspace_rehashing(client: redis.Redis) -> bool:
    """Redis is moving its key table to one twice the size (it does so as the key count passes a power of
    two, a little at every command and 1 ms every 100 ms when idle: ~20 s for 1M keys)."""
    return b"rehashing target" in client.execute_command("DEBUG", "HTSTATS", "0")


def scale(waiting: int, k: int) -> dict[str, float]:
    """Submit and drain rates of k jobs with an empty queue, then with `waiting` jobs in it; Redis bytes per
    waiting job (used_memory growth over the `waiting` submissions).

    Filling 1M jobs doubles Redis's key table near the end (2^20 keys), and Redis then rehashes it
    incrementally for tens of seconds, which slows every command meanwhile whatever the queues hold.
    The submit rate is measured twice: right after the fill (reported: during that one-off rehash,
    when it is still going on) and once the rehash is over (judged: the steady state of a 1M backlog)."""
    with fresh_redis("--enable-debug-command", "local") as server:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, CHUNK)  # warm-up: scripts loaded, keys exist, then drained below
        out = {"submit_empty": submit_backlog(client, k)}
        with processes() as procs:
            procs.append(start_jobengine_worker(server.url, "bench-scale-empty"))
            out["drain_empty"] = measure_drain(finished(client), CHUNK + k, 600, segments=10)
        assert client.llen("rq:queue:default") == 0
        done_before = client.zcard("rq:finished:default")
        before = client.info("memory")["used_memory"]
        out["fill"] = submit_backlog(client, waiting, start=k)
        out["per_job"] = (client.info("memory")["used_memory"] - before) / waiting
        start = k + waiting
        if keyspace_rehashing(client):
            out["submit_rehashing"] = submit_backlog(client, k, start=start)
            start += k
        t = time.monotonic()
        while keyspace_rehashing(client) and time.monotonic() - t < 180:
            time.sleep(0.5)
        out["rehash_wait"] = time.monotonic() - t
        out["submit_full"] = submit_backlog(client, k, start=start)
        with processes() as procs:
            procs.append(start_jobengine_worker(server.url, "bench-scale-full"))
            out["drain_full"] = measure_drain(lambda: client.zcard("rq:finished:default") - done_before, k, 600,
                                              segments=10)
        out["waiting"] = client.llen("rq:queue:default")
        return out


def memory(n: int) -> dict[str, float]:
    """One worker drains n add jobs; its RSS (supervisor + executor) is sampled at every 5% done.
    'start' is at 10% (imports done, caches warm), 'end' at 100%."""
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, n)
        procs.append(start_jobengine_worker(server.url, "bench-rss"))
        samples: dict[int, float] = {}

        def sample(done: int) -> None:
            step = done * 20 // n
            if step not in samples:
                samples[step] = rss_tree(procs[0].pid)

        measure_drain(finished(client), n, 1800, on_progress=sample)
        end = rss_tree(procs[0].pid)
        start = samples.get(2, min(samples.values()))
        return {"rss_start": start, "rss_end": end, "rss_max": max([end, *samples.values()]),
                "stored": results_stored(client, "rq:finished:default")}


# ----- the machine's own two-core ceiling -----
SPIN_LOOPS = 3_000_000  # about half a second of one core


def _spin(cpu: int, out: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    t0, x = time.perf_counter(), 0
    for i in range(SPIN_LOOPS):
        x += i ^ 3
    out.put(time.perf_counter() - t0)


def two_core_ratio() -> float:
    """CPU-bound work done per second by two processes on two cores over one process alone (runs 1, 2, 1).
    On a dedicated 2-core machine it is 2.0; on this shared VM the second core is often slower (its
    host sibling busy), so this is the ceiling of any two-process figure measured at the same moment."""
    ctx = multiprocessing.get_context("fork")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    times: dict[int, list[float]] = {1: [], 2: []}
    for count in (1, 2, 1):
        out = ctx.Queue()
        procs = [ctx.Process(target=_spin, args=(cpus[k], out)) for k in range(count)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        times[count].append(max(out.get() for _ in procs))
    return 2 * statistics.mean(times[1]) / times[2][0]


# ----- table -----
def record(scenario: str, engine: str, value: float, unit: str, **extra: Any) -> None:
    RESULTS.append({"scenario": scenario, "engine": engine, "value": round(value, 2), "unit": unit, **extra})
    print(f"  {scenario:<12} {engine:<44} {value:>12,.1f} {unit}", flush=True)


def throughput(engine: str, runs: int, n: int, fn: Callable[[], tuple[float, int]]) -> None:
    record_runs(engine, n, [fn() for _ in range(runs)])


def record_runs(engine: str, n: int, outs: list[tuple[float, int]], **extra: Any) -> None:
    """The median of runs' (jobs/s, results stored)."""
    record("throughput", engine, statistics.median(r for r, _ in outs), "jobs/s", jobs=n,
           runs=[round(r, 1) for r, _ in outs], results_stored=min(s for _, s in outs), **extra)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: servers and workers are stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each (no targets judged)")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (see --list)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    quick = args.quick
    runs = 1 if quick else 3
    n = 2000 if quick else 20000  # every engine's backlog, stock RQ Worker's excepted
    rq_fork_n = 300 if quick else 2000  # a fork per job: ~50 jobs/s, the rate is flat from the first jobs
    lat_n = 200 if quick else 1000
    peers = Path(BENCH_PY).exists()
    dramatiq = ["dramatiq", "bench.peers.dramatiq_tasks", "--processes", "1", "--threads"]
    celery = ["celery", "-A", "bench.peers.celery_tasks", "worker", "-P", "solo", "-c", "1", "--loglevel", "WARNING"]

    def latency() -> None:
        p50, p99, floor = api_latency(lat_n)
        record("latency", "jobengine API p50", p50, "ms", jobs=lat_n)
        record("latency", "jobengine API p99", p99, "ms", jobs=lat_n)
        record("latency", "jobengine API HTTP floor p50", floor, "ms")

    def latency_peer(label: str, name: str, python: str, worker: Callable[[str], subprocess.Popen]) -> None:
        p50, p99 = peer_latency(name, lat_n, python, worker)
        record("latency", f"{label} p50", p50, "ms", jobs=lat_n)
        record("latency", f"{label} p99", p99, "ms", jobs=lat_n)

    def api() -> None:
        (a_rps, a_p99, a_bad), (n_rps, n_p99, n_bad), rss, written = api_throughput(2 if quick else 10)
        record("api", "no-op FastAPI POST req/s", n_rps, "req/s", p99_ms=n_p99, non_2xx=n_bad)
        record("api", "no-op FastAPI POST p99", n_p99, "ms")
        record("api", "POST /v1/jobs req/s", a_rps, "req/s", p99_ms=a_p99, non_2xx=a_bad,
               jobs_written_incl_warmup=written)
        record("api", "POST /v1/jobs p99", a_p99, "ms", non_2xx=a_bad)
        record("api", "API RSS peak under wrk", rss, "MiB")

    def batch() -> None:
        rate, accepted, rss, queued = batch_throughput(10 if quick else 60)
        record("api", "POST /v1/jobs:batch (1,000/request)", rate, "jobs/s", accepted=accepted, queued=queued)
        record("api", "API RSS peak during batches", rss, "MiB")

    def scale_() -> None:
        waiting = 100_000 if quick else 1_000_000
        s = scale(waiting, 10_000 if quick else 50_000)
        record("scale", "submit, empty queue", s["submit_empty"], "jobs/s")
        record("scale", f"submit, {waiting:,} waiting", s["submit_full"], "jobs/s",
               rehash_wait_seconds=round(s["rehash_wait"], 1))
        if "submit_rehashing" in s:
            record("scale", f"submit, {waiting:,} waiting, Redis rehashing its keys", s["submit_rehashing"],
                   "jobs/s")
        record("scale", "drain, empty queue", s["drain_empty"], "jobs/s")
        record("scale", f"drain, {waiting:,} waiting", s["drain_full"], "jobs/s", left_waiting=s["waiting"])
        record("scale", f"Redis bytes per waiting job ({waiting:,})", s["per_job"], "B")

    pairs: list[tuple[tuple[float, int], tuple[float, int]]] = []
    ceilings: list[float] = []

    def jobengine_pairs() -> list[tuple[tuple[float, int], tuple[float, int]]]:
        """1 worker and 2 workers run in turns (1, 2, 1, 2, ...): the 2-worker ratio compares runs taken
        side by side, so a slow minute of the machine weighs on both. Five pairs in a full run, each
        beside the machine's own two-core ratio, measured just before it."""
        if not pairs:
            for _ in range(1 if quick else 5):
                if len(os.sched_getaffinity(0)) >= 2:
                    ceilings.append(two_core_ratio())
                pairs.append((jobengine_throughput(n, 1), jobengine_throughput(n, 2)))
            if ceilings:
                record("throughput", MACHINE_2CORE, statistics.median(ceilings), "x",
                       runs=[round(c, 2) for c in ceilings])
        return pairs

    def jobengine_runs(workers: int) -> None:
        engine = f"jobengine, {workers} worker{'s' if workers > 1 else ''}"
        if not {"throughput-jobengine", "throughput-jobengine2"} <= set(chosen):  # one of them: no pairs
            throughput(engine, runs, n, lambda: jobengine_throughput(n, workers))
            return
        outs = [pair[workers - 1] for pair in jobengine_pairs()]
        extra = {"pair_ratios": [round(two[0] / one[0], 2) for one, two in pairs]} if workers == 2 else {}
        record_runs(engine, n, outs, **extra)

    def mem() -> None:
        jobs = 20_000 if quick else 200_000
        m = memory(jobs)
        record("memory", "worker RSS at 10% drained", m["rss_start"], "MiB", jobs=jobs)
        record("memory", "worker RSS at 100% drained", m["rss_end"], "MiB", jobs=jobs, results_stored=m["stored"],
               peak=round(m["rss_max"], 1))

    scenarios: dict[str, Callable[[], None]] = {
        "throughput-jobengine": lambda: jobengine_runs(1),
        "throughput-jobengine2": lambda: jobengine_runs(2),
        # not a target: how far this machine goes with more workers than the 2-worker ratio asks for
        "throughput-jobengine4": lambda: throughput("jobengine, 4 workers", runs, n,
                                                    lambda: jobengine_throughput(n, 4)),
        "throughput-rq-simple": lambda: throughput("RQ SimpleWorker", runs, n,
                                                   lambda: rq_throughput(n, "rq.worker.SimpleWorker")),
        "throughput-rq-worker": lambda: throughput("RQ Worker (fork per job)", runs, rq_fork_n,
                                                   lambda: rq_throughput(rq_fork_n, "rq.worker.Worker")),
        "throughput-dramatiq": lambda: throughput("Dramatiq (1 process, 8 threads)", runs, n,
                                                  lambda: peer_throughput("dramatiq", n, [*dramatiq, "8"])),
        "throughput-dramatiq1": lambda: throughput("Dramatiq (1 process, 1 thread)", runs, n,
                                                   lambda: peer_throughput("dramatiq", n, [*dramatiq, "1"])),
        "throughput-celery": lambda: throughput("Celery (solo pool)", runs, n,
                                                lambda: peer_throughput("celery", n, celery)),
        "latency": latency,
        "latency-rq-simple": lambda: latency_peer("RQ SimpleWorker", "rq", MAIN_PY,
                                                  lambda url: rq_worker(url, "rq.worker.SimpleWorker")),
        "latency-dramatiq": lambda: latency_peer("Dramatiq (8 threads, Results)", "dramatiq", BENCH_PY,
                                                 lambda url: peer_worker(url, [*dramatiq, "8"])),
        "latency-celery": lambda: latency_peer("Celery (solo, AsyncResult.get)", "celery", BENCH_PY,
                                               lambda url: peer_worker(url, celery)),
        "api": api,
        "batch": batch,
        "scale": scale_,
        "memory": mem,
    }
    aliases = {"jobengine": "throughput-jobengine", "jobengine2": "throughput-jobengine2",
               "jobengine4": "throughput-jobengine4",
               "rq-simple": "throughput-rq-simple", "rq-worker": "throughput-rq-worker",
               "dramatiq": "throughput-dramatiq", "dramatiq1": "throughput-dramatiq1", "celery": "throughput-celery"}
    peer_keys = {"throughput-dramatiq", "throughput-dramatiq1", "throughput-celery", "latency-dramatiq",
                 "latency-celery"}
    if args.list:
        print("\n".join(scenarios))
        return 0
    chosen = [aliases.get(k, k) for k in (args.only.split(",") if args.only else scenarios) if k]
    if unknown := [k for k in chosen if k not in scenarios]:
        parser.error(f"unknown scenario(s) {unknown}; see --list")
    print(f"jobengine benchmarks ({'quick' if quick else 'full'}), nproc={os.cpu_count()}", flush=True)
    failed: list[str] = []
    skipped: list[str] = []
    for key in chosen:
        if key in peer_keys and not peers:
            skipped.append(key)
            print(f"  skipped {key}: .venv-bench missing (make venv-bench creates it)")
            continue
        if key == "api" and not shutil.which("wrk"):
            skipped.append(key)
            print("  skipped api: wrk missing (apt-get install -y wrk)")
            continue
        try:
            scenarios[key]()
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' figures
            failed.append(key)
            print(f"  {key} FAILED: {exc!r}", flush=True)
    table = judge(RESULTS, quick)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"quick": quick, "nproc": os.cpu_count(), "date": time.strftime("%F %T %z"),
                                          "loadavg": os.getloadavg(), "results": RESULTS, "table": table,
                                          "failed": failed, "skipped": skipped}, indent=1))
    return 1 if failed else 0


def judge(results: list[dict[str, Any]], quick: bool = False) -> list[dict[str, Any]]:
    """The table: every figure, its ratio against its baseline and the target with PASS/FAIL
    (a quick run shows the ratios but judges nothing: its counts are too small to time)."""
    by = {r["engine"]: r["value"] for r in results}
    dram = [e for e in ("Dramatiq (1 process, 8 threads)", "Dramatiq (1 process, 1 thread)") if e in by]
    best_dramatiq = max(dram, key=lambda e: by[e]) if dram else None

    def ratio(a: str, b: str | None) -> float | None:
        return by[a] / by[b] if b and a in by and b in by and by[b] else None

    rows = [{**{k: r[k] for k in ("scenario", "engine", "value", "unit")}, "ratio": "", "target": "", "verdict": ""}
            for r in results]

    def judged(engine: str, ratio_text: str, target: str, ok: bool | None) -> None:
        for row in rows:
            if row["engine"] == engine:
                if row["target"] or row["ratio"]:  # a second ratio or target on the same figure: its own row
                    first = row
                    row = {**row, "ratio": "", "target": "", "verdict": ""}
                    rows.insert(rows.index(first) + 1, row)
                row.update(ratio=ratio_text, target=target,
                           verdict="" if ok is None or quick else ("PASS" if ok else "FAIL"))
                return

    one = "jobengine, 1 worker"
    if (x := ratio(one, best_dramatiq)) is not None:
        judged(one, f"{x:.2f}x {best_dramatiq}", ">= 1.5x Dramatiq", x >= 1.5)
    if (x := ratio(one, "RQ SimpleWorker")) is not None:
        judged(one, f"{x:.1f}x RQ SimpleWorker", ">= 10x RQ SimpleWorker", x >= 10)
    if (x := ratio("jobengine, 2 workers", one)) is not None:
        judged("jobengine, 2 workers", f"{x:.2f}x 1 worker", ">= 1.7x 1 worker", x >= 1.7)
    if MACHINE_2CORE in by:
        judged(MACHINE_2CORE, "", "(the ceiling of the 2-worker ratio, measured beside it; not judged)", None)
    if (x := ratio("jobengine, 4 workers", one)) is not None:
        judged("jobengine, 4 workers", f"{x:.2f}x 1 worker", "", None)
    for peer in ("RQ Worker (fork per job)", "Celery (solo pool)", *dram):
        if (x := ratio(one, peer)) is not None:
            judged(peer, f"jobengine 1 worker = {x:.1f}x", "", None)
    if "jobengine API p50" in by:
        judged("jobengine API p50", "", "<= 2 ms", by["jobengine API p50"] <= 2)
    if "jobengine API p99" in by:
        judged("jobengine API p99", "", "<= 10 ms", by["jobengine API p99"] <= 10)
    for peer in ("RQ SimpleWorker", "Dramatiq (8 threads, Results)", "Celery (solo, AsyncResult.get)"):
        for q in ("p50", "p99"):
            if (x := ratio(f"{peer} {q}", f"jobengine API {q}")) is not None:
                judged(f"{peer} {q}", f"{x:.1f}x jobengine's", "", None)
    if (x := ratio("POST /v1/jobs req/s", "no-op FastAPI POST req/s")) is not None:
        judged("POST /v1/jobs req/s", f"{x:.0%} of no-op", ">= 60% of no-op", x >= 0.6)
    if "POST /v1/jobs p99" in by:
        judged("POST /v1/jobs p99", "", "< 25 ms at 64 conns", by["POST /v1/jobs p99"] < 25)
    for e in ("API RSS peak under wrk", "API RSS peak during batches"):
        if e in by:
            judged(e, "", "< 120 MB", by[e] * 2**20 < 120e6)
    if (e := "POST /v1/jobs:batch (1,000/request)") in by:
        judged(e, "", ">= 20,000 jobs/s", by[e] >= 20000)
    for what in ("submit", "drain"):
        full = next((e for e in by if e.startswith(f"{what}, ") and e.endswith(" waiting")), None)
        if full and (x := ratio(full, f"{what}, empty queue")) is not None:
            judged(full, f"{x:.0%} of empty queue", ">= 90% of empty queue", x >= 0.9)
    for e in [e for e in by if e.endswith("Redis rehashing its keys")]:
        if (x := ratio(e, "submit, empty queue")) is not None:
            judged(e, f"{x:.0%} of empty queue", "(one-off at 2^20 keys; not judged)", None)
    for e in [e for e in by if e.startswith("Redis bytes per waiting job")]:
        judged(e, "", "<= 1 KiB", by[e] <= 1024)
    if (e := "worker RSS at 100% drained") in by and (s := "worker RSS at 10% drained") in by:
        growth = by[e] / by[s] - 1
        judged(e, f"{growth:+.1%} since 10%", "flat (within 10%)", abs(growth) <= 0.10)
    print(f"\n({'quick run: small counts, targets shown but not judged' if quick else 'full run'}; "
          f"load average {os.getloadavg()[0]:.2f})")
    print("| scenario | engine | figure | unit | ratio | target | verdict |")
    print("| --- | --- | ---: | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['scenario']} | {row['engine']} | {row['value']:,.2f} | {row['unit']} | {row['ratio']} "
              f"| {row['target']} | {row['verdict']} |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
