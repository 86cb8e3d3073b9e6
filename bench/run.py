"""jobengine benchmarks, side by side with RQ, Dramatiq and Celery on the same machine in one run.

    python -m bench.run            # full (make bench)
    python -m bench.run --quick    # small counts, no targets judged (make bench-quick, CI)

Throughput: each engine gets its own fresh redis-server (127.0.0.1, no persistence), the backlog of
N trivial add(a, b) jobs is enqueued first, then ONE worker process starts; the rate is measured by
polling the count of finished jobs every 10 ms, from the moment 1% are done to the moment all are
(so start-up is not counted). jobengine and RQ are counted by their finished registry; Dramatiq and
Celery jobs INCR a counter (they keep no registry). Peers run from .venv-bench (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
MAIN_PY = sys.executable
BENCH_PY = str(ROOT / ".venv-bench" / "bin" / "python")
RESULTS: list[dict] = []


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBENGINE_", "OTEL_"))}
    env.update(JOBENGINE_REDIS_URL=url, BENCH_REDIS_URL=url, JOBENGINE_JOB_TYPE_MODULES="bench.jobs",
               JOBENGINE_LOG_LEVEL="WARNING", JOBENGINE_METRICS_PORT="0", JOBENGINE_ENV="development",
               PYTHONPATH=str(ROOT), **extra)
    return env


def measure_drain(count: Callable[[], int], n: int, timeout: float) -> float:
    """Jobs/s between 1% and 100% of n done."""
    start_at = max(1, n // 100)
    deadline = time.monotonic() + timeout
    t0 = None
    done0 = 0
    while True:
        done = count()
        now = time.monotonic()
        if t0 is None and done >= start_at:
            t0, done0 = now, done
        if done >= n:
            return (n - done0) / (now - t0) if t0 and now > t0 else float("nan")
        if now > deadline:
            raise TimeoutError(f"only {done}/{n} jobs done")
        time.sleep(0.01)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def jobengine_throughput(n: int, workers: int) -> float:
    from jobengine.catalog import discover
    from jobengine.producer import JobSpec, Producer

    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        producer = Producer(client, discover(["bench.jobs"]))
        for i in range(0, n, 2000):
            producer.submit_many([JobSpec("add", {"a": j, "b": 1}) for j in range(i, min(n, i + 2000))])
        procs = [subprocess.Popen([MAIN_PY, "-m", "jobengine_worker"],
                                  env=env_for(server.url, JOBENGINE_WORKER_NAME=f"bench-{k}"), cwd=ROOT)
                 for k in range(workers)]
        rate = measure_drain(lambda: client.zcard("rq:finished:default"), n, 600)
        sample = client.zrange("rq:finished:default", 0, 0)[0].decode()
        assert client.exists(f"rq:results:{sample}"), "results must be stored"
        return rate
    finally:
        stop(procs)
        server.stop()


def rq_throughput(n: int, worker_class: str) -> float:
    from rq import Queue
    from rq.serializers import JSONSerializer

    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        queue = Queue("default", connection=client, serializer=JSONSerializer)
        for i in range(0, n, 1000):
            with client.pipeline() as pipe:
                queue.enqueue_many([Queue.prepare_data("bench.peers.rq_tasks.add", (j, 1), result_ttl=3600)
                                    for j in range(i, min(n, i + 1000))], pipeline=pipe)
                pipe.execute()
        rq_bin = str(Path(MAIN_PY).parent / "rq")
        procs = [subprocess.Popen([rq_bin, "worker", "-q", "-w", worker_class, "--serializer",
                                   "rq.serializers.JSONSerializer", "-u", server.url, "default"],
                                  env=env_for(server.url), cwd=ROOT, stdout=subprocess.DEVNULL)]
        return measure_drain(lambda: client.zcard("rq:finished:default"), n, 900)
    finally:
        stop(procs)
        server.stop()


def peer_throughput(name: str, n: int, worker_args: list[str]) -> float:
    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        subprocess.run([BENCH_PY, "-m", "bench.peers.enqueue", name, str(n)], env=env_for(server.url), cwd=ROOT,
                       check=True)
        procs = [subprocess.Popen([str(Path(BENCH_PY).parent / worker_args[0]), *worker_args[1:]],
                                  env=env_for(server.url), cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
        return measure_drain(lambda: int(client.get("bench:done") or 0), n, 600)
    finally:
        stop(procs)
        server.stop()


def api_latency(n: int) -> tuple[float, float, float]:
    """ms from POST /v1/jobs returning to the result in hand (GET ?wait=), p50 and p99; and the HTTP floor."""
    server = EmbeddedRedis(appendonly=False).start()
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        env = env_for(server.url, JOBENGINE_API_PORT=str(port))
        procs = [subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], env=env, cwd=ROOT),
                 subprocess.Popen([MAIN_PY, "-m", "jobengine_worker"], env=env, cwd=ROOT)]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/readyz").status_code == 200 and redis.Redis.from_url(server.url).scard("rq:workers"):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("API or worker did not start")
            time.sleep(0.1)
        floor, lat = [], []
        for i in range(n + 50):
            t = time.perf_counter()
            client.get("/healthz")
            floor.append(time.perf_counter() - t)
            job = client.post("/v1/jobs", json={"type": "add", "payload": {"a": i, "b": 1}}).json()
            t = time.perf_counter()
            body = client.get(f"/v1/jobs/{job['id']}", params={"wait": 5}).json()
            lat.append(time.perf_counter() - t)
            assert body["status"] == "finished" and body["result"] == {"sum": i + 1}, body
        lat, floor = sorted(lat[50:]), sorted(floor[50:])  # the first 50 warm up
        q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
        return q(lat, 0.5), q(lat, 0.99), q(floor, 0.5)
    finally:
        stop(procs)
        server.stop()


def memory_per_job(n: int) -> float:
    from jobengine.catalog import discover
    from jobengine.producer import JobSpec, Producer

    server = EmbeddedRedis(appendonly=False).start()
    try:
        client = redis.Redis.from_url(server.url)
        producer = Producer(client, discover(["bench.jobs"]))
        producer.submit_many([JobSpec("add", {"a": 1, "b": 1})])
        before = client.info("memory")["used_memory"]
        for i in range(0, n, 2000):
            producer.submit_many([JobSpec("add", {"a": j, "b": 1}) for j in range(i, min(n, i + 2000))])
        return (client.info("memory")["used_memory"] - before) / n
    finally:
        server.stop()


def record(scenario: str, engine: str, value: float, unit: str) -> None:
    RESULTS.append({"scenario": scenario, "engine": engine, "value": round(value, 2), "unit": unit})
    print(f"  {scenario:<12} {engine:<28} {value:>10.1f} {unit}", flush=True)


def median(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each, no targets judged")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (see --list)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    quick = args.quick
    runs = 1 if quick else 3
    n = 2000 if quick else 20000
    peers = Path(BENCH_PY).exists()
    scenarios: dict[str, Callable[[], None]] = {
        "jobengine": lambda: record("throughput", "jobengine, 1 worker", median(runs, lambda: jobengine_throughput(n, 1)), "jobs/s"),
        "jobengine2": lambda: record("throughput", "jobengine, 2 workers", median(runs, lambda: jobengine_throughput(n, 2)), "jobs/s"),
        "rq-simple": lambda: record("throughput", "RQ SimpleWorker", median(runs, lambda: rq_throughput(n // 4, "rq.worker.SimpleWorker")), "jobs/s"),
        "rq-worker": lambda: record("throughput", "RQ Worker (fork per job)", median(runs, lambda: rq_throughput(300 if quick else 1000, "rq.worker.Worker")), "jobs/s"),
        "dramatiq": lambda: record("throughput", "Dramatiq (1 process, 8 threads)", median(runs, lambda: peer_throughput("dramatiq", n // 2, ["dramatiq", "bench.peers.dramatiq_tasks", "--processes", "1", "--threads", "8"])), "jobs/s"),
        "dramatiq1": lambda: record("throughput", "Dramatiq (1 process, 1 thread)", median(runs, lambda: peer_throughput("dramatiq", n // 2, ["dramatiq", "bench.peers.dramatiq_tasks", "--processes", "1", "--threads", "1"])), "jobs/s"),
        "celery": lambda: record("throughput", "Celery (solo pool)", median(runs, lambda: peer_throughput("celery", n // 4, ["celery", "-A", "bench.peers.celery_tasks", "worker", "-P", "solo", "-c", "1", "--loglevel", "WARNING"])), "jobs/s"),
        "latency": lambda: [record("latency", f"jobengine API {name}", v, "ms") for name, v in
                            zip(("p50", "p99", "HTTP floor p50"), api_latency(200 if quick else 1000))],
        "memory": lambda: record("memory", "Redis bytes per waiting job", memory_per_job(20_000 if quick else 100_000), "B"),
    }
    peer_keys = {"dramatiq", "dramatiq1", "celery"}
    if args.list:
        print("\n".join(scenarios))
        return 0
    chosen = [k for k in (args.only.split(",") if args.only else scenarios) if k]
    print(f"jobengine benchmarks ({'quick' if quick else 'full'}), nproc={os.cpu_count()}")
    for key in chosen:
        if key in peer_keys and not peers:
            print(f"  skipped {key}: .venv-bench missing (make bench creates it)")
            continue
        scenarios[key]()
    by = {r["engine"]: r["value"] for r in RESULTS}
    checks = [
        ("1 worker >= 1.5x Dramatiq", "jobengine, 1 worker", "Dramatiq (1 process, 8 threads)", 1.5),
        ("1 worker >= 10x RQ SimpleWorker", "jobengine, 1 worker", "RQ SimpleWorker", 10),
        ("2 workers >= 1.7x 1 worker", "jobengine, 2 workers", "jobengine, 1 worker", 1.7),
    ]
    print("\nratios (same run)")
    for label, a, b, want in checks:
        if a in by and b in by and by[b]:
            ratio = by[a] / by[b]
            verdict = "" if quick else ("PASS" if ratio >= want else "FAIL")
            print(f"  {label:<34} {ratio:6.2f}x {verdict}")
    if "jobengine API p50" in by:
        verdict = "" if quick else ("PASS" if by["jobengine API p50"] <= 2 and by["jobengine API p99"] <= 10 else "FAIL")
        print(f"  latency p50 <= 2 ms, p99 <= 10 ms   {by['jobengine API p50']:.2f} / {by['jobengine API p99']:.2f} ms {verdict}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"quick": quick, "results": RESULTS}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
