"""jobengine benchmarks, side by side with RQ, Dramatiq and Celery on the same machine in one run.

    python -m bench.run                       # full (make bench): median of 3, targets judged
    python -m bench.run --quick               # small counts, one run each (make bench-quick, CI)
    python -m bench.run --only throughput-jobengine,throughput-rq-simple --out /tmp/b.json
    python -m bench.run --list                # scenario keys

Every scenario gets its own fresh redis-server (127.0.0.1, no persistence); every server it starts
binds 127.0.0.1 and is stopped in a finally block; every load is bounded in count and time.

Throughput: the backlog of N trivial add(a, b) jobs is enqueued first, then ONE worker process (or
two) starts; the rate is measured by polling the count of finished jobs every 10 ms, from the moment
1% are done to the moment all are (so start-up is not counted). jobengine and RQ are counted by their
finished registry (results are stored the normal way and counted afterwards); Dramatiq and Celery
jobs INCR a counter (they keep no registry). Peers run from .venv-bench (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
MAIN_PY = sys.executable
BENCH_PY = str(ROOT / ".venv-bench" / "bin" / "python")
RESULTS: list[dict[str, Any]] = []


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBENGINE_", "OTEL_"))}
    env.update(JOBENGINE_REDIS_URL=url, BENCH_REDIS_URL=url, JOBENGINE_JOB_TYPE_MODULES="bench.jobs",
               JOBENGINE_LOG_LEVEL="WARNING", JOBENGINE_METRICS_PORT="0", JOBENGINE_ENV="development",
               PYTHONPATH=str(ROOT), **extra)
    return env


def measure_drain(count: Callable[[], int], n: int, timeout: float,
                  on_progress: Callable[[int], None] | None = None) -> float:
    """Jobs/s between 1% and 100% of n done."""
    start_at = max(1, n // 100)
    deadline = time.monotonic() + timeout
    t0 = None
    done0 = 0
    while True:
        done = count()
        now = time.monotonic()
        if on_progress:
            on_progress(done)
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
            p.wait(5)


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


def submit_backlog(client: redis.Redis, n: int) -> None:
    from jobengine.catalog import discover
    from jobengine.producer import JobSpec, Producer

    producer = Producer(client, discover(["bench.jobs"]))
    for i in range(0, n, 2000):
        producer.submit_many([JobSpec("add", {"a": j, "b": 1}) for j in range(i, min(n, i + 2000))])


def start_jobengine_worker(url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen([MAIN_PY, "-m", "jobengine_worker"], env=env_for(url, JOBENGINE_WORKER_NAME=name),
                            cwd=ROOT)


def jobengine_throughput(n: int, workers: int) -> tuple[float, int]:
    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, n)
        procs = [start_jobengine_worker(server.url, f"bench-{k}") for k in range(workers)]
        rate = measure_drain(lambda: client.zcard("rq:finished:default"), n, 600)
        return rate, results_stored(client, "rq:finished:default")
    finally:
        stop(procs)
        server.stop()


def rq_throughput(n: int, worker_class: str) -> tuple[float, int]:
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
        rate = measure_drain(lambda: client.zcard("rq:finished:default"), n, 900)
        return rate, results_stored(client, "rq:finished:default")
    finally:
        stop(procs)
        server.stop()


def peer_throughput(name: str, n: int, worker_args: list[str]) -> tuple[float, int]:
    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        subprocess.run([BENCH_PY, "-m", "bench.peers.enqueue", name, str(n)], env=env_for(server.url), cwd=ROOT,
                       check=True, timeout=300)
        procs = [subprocess.Popen([str(Path(BENCH_PY).parent / worker_args[0]), *worker_args[1:]],
                                  env=env_for(server.url), cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
        rate = measure_drain(lambda: int(client.get("bench:done") or 0), n, 600)
        return rate, int(client.get("bench:done") or 0)
    finally:
        stop(procs)
        server.stop()


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


def api_latency(n: int) -> tuple[float, float, float]:
    """ms from POST /v1/jobs returning to the result in hand (GET ?wait=), p50 and p99; and the HTTP floor."""
    server = EmbeddedRedis(appendonly=False).start()
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        env = env_for(server.url, JOBENGINE_API_PORT=str(port))
        procs = [subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], env=env, cwd=ROOT),
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
        lat, floor = sorted(lat[50:]), sorted(floor[50:])  # the first 50 warm up
        q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
        return q(lat, 0.5), q(lat, 0.99), q(floor, 0.5)
    finally:
        stop(procs)
        server.stop()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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


def api_throughput(seconds: int) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """wrk against POST /v1/jobs of the API (no worker: jobs wait) and against bench/noop_app.py."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    server = EmbeddedRedis(appendonly=False).start()
    api_port, noop_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([MAIN_PY, "-m", "bench.noop_app"],
                                      env=env_for(server.url, BENCH_NOOP_PORT=str(noop_port)), cwd=ROOT))
        wait_api(f"http://127.0.0.1:{noop_port}")
        noop = wrk(f"http://127.0.0.1:{noop_port}", seconds)
        stop(procs)
        procs = [subprocess.Popen([MAIN_PY, "-m", "jobengine_api"],
                                  env=env_for(server.url, JOBENGINE_API_PORT=str(api_port)), cwd=ROOT)]
        wait_api(f"http://127.0.0.1:{api_port}")
        api = wrk(f"http://127.0.0.1:{api_port}", seconds)
        return api, noop
    finally:
        stop(procs)
        server.stop()


def batch_throughput(requests: int, clients: int = 2) -> tuple[float, int]:
    """jobs/s through POST /v1/jobs:batch, 1,000 add jobs a request, `clients` concurrent keep-alive clients."""
    server = EmbeddedRedis(appendonly=False).start()
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs = [subprocess.Popen([MAIN_PY, "-m", "jobengine_api"],
                                  env=env_for(server.url, JOBENGINE_API_PORT=str(port)), cwd=ROOT)]
        base = f"http://127.0.0.1:{port}"
        wait_api(base)
        body = json.dumps({"jobs": [{"type": "add", "payload": {"a": j, "b": 1}} for j in range(1000)]})
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
        threads = [threading.Thread(target=run, args=(k, requests // clients)) for k in range(clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        elapsed = time.perf_counter() - t
        if errors:
            raise errors[0]
        return sum(accepted) / elapsed, sum(accepted)
    finally:
        stop(procs)
        server.stop()


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


def memory(n: int) -> dict[str, float]:
    """Redis used_memory per waiting add job after n submissions; then one worker drains them all and its
    RSS (supervisor + executor) is sampled at 5% done (warmed up) and at the end."""
    server = EmbeddedRedis(appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, 1)  # scripts loaded, queue and index keys exist
        client.delete("rq:queue:default")
        before = client.info("memory")["used_memory"]
        submit_backlog(client, n)
        per_job = (client.info("memory")["used_memory"] - before) / n
        procs = [start_jobengine_worker(server.url, "bench-rss")]
        samples: dict[str, float] = {}

        def sample(done: int) -> None:
            if "start" not in samples and done >= n // 20:
                samples["start"] = rss_tree(procs[0].pid)

        measure_drain(lambda: client.zcard("rq:finished:default"), n, 900, on_progress=sample)
        samples["end"] = rss_tree(procs[0].pid)
        return {"per_job": per_job, "rss_start": samples.get("start", float("nan")), "rss_end": samples["end"]}
    finally:
        stop(procs)
        server.stop()


def record(scenario: str, engine: str, value: float, unit: str, **extra: Any) -> None:
    RESULTS.append({"scenario": scenario, "engine": engine, "value": round(value, 2), "unit": unit, **extra})
    print(f"  {scenario:<12} {engine:<34} {value:>10.1f} {unit}", flush=True)


def throughput(engine: str, runs: int, n: int, fn: Callable[[], tuple[float, int]]) -> None:
    outs = [fn() for _ in range(runs)]
    record("throughput", engine, statistics.median(r for r, _ in outs), "jobs/s", jobs=n,
           runs=[round(r, 1) for r, _ in outs], results_stored=min(s for _, s in outs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (see --list)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    quick = args.quick
    runs = 1 if quick else 3
    n = 2000 if quick else 20000
    peers = Path(BENCH_PY).exists()
    dramatiq = ["dramatiq", "bench.peers.dramatiq_tasks", "--processes", "1", "--threads"]
    celery = ["celery", "-A", "bench.peers.celery_tasks", "worker", "-P", "solo", "-c", "1", "--loglevel", "WARNING"]
    rq_simple_n = 500 if quick else 5000
    rq_fork_n = 300 if quick else 1000

    def latency() -> None:
        for name, v in zip(("p50", "p99", "HTTP floor p50"), api_latency(200 if quick else 1000)):
            record("latency", f"jobengine API {name}", v, "ms")

    def api() -> None:
        (a_rps, a_p99, a_bad), (n_rps, n_p99, n_bad) = api_throughput(3 if quick else 10)
        record("api", "no-op FastAPI POST req/s", n_rps, "req/s", p99_ms=n_p99, non_2xx=n_bad)
        record("api", "no-op FastAPI POST p99", n_p99, "ms")
        record("api", "POST /v1/jobs req/s", a_rps, "req/s", p99_ms=a_p99, non_2xx=a_bad)
        record("api", "POST /v1/jobs p99", a_p99, "ms", non_2xx=a_bad)

    def batch() -> None:
        rate, accepted = batch_throughput(10 if quick else 40)
        record("api", "POST /v1/jobs:batch (1,000/request)", rate, "jobs/s", accepted=accepted)

    def mem() -> None:
        m = memory(20_000 if quick else 100_000)
        record("memory", "Redis bytes per waiting job", m["per_job"], "B")
        record("memory", "worker RSS at 5% drained", m["rss_start"], "MiB")
        record("memory", "worker RSS at 100% drained", m["rss_end"], "MiB")

    scenarios: dict[str, Callable[[], None]] = {
        "throughput-jobengine": lambda: throughput("jobengine, 1 worker", runs, n, lambda: jobengine_throughput(n, 1)),
        "throughput-jobengine2": lambda: throughput("jobengine, 2 workers", runs, n, lambda: jobengine_throughput(n, 2)),
        "throughput-rq-simple": lambda: throughput("RQ SimpleWorker", runs, rq_simple_n,
                                                   lambda: rq_throughput(rq_simple_n, "rq.worker.SimpleWorker")),
        "throughput-rq-worker": lambda: throughput("RQ Worker (fork per job)", runs, rq_fork_n,
                                                   lambda: rq_throughput(rq_fork_n, "rq.worker.Worker")),
        "throughput-dramatiq": lambda: throughput("Dramatiq (1 process, 8 threads)", runs, n // 2,
                                                  lambda: peer_throughput("dramatiq", n // 2, [*dramatiq, "8"])),
        "throughput-dramatiq1": lambda: throughput("Dramatiq (1 process, 1 thread)", runs, n // 2,
                                                   lambda: peer_throughput("dramatiq", n // 2, [*dramatiq, "1"])),
        "throughput-celery": lambda: throughput("Celery (solo pool)", runs, n // 4,
                                                lambda: peer_throughput("celery", n // 4, celery)),
        "latency": latency,
        "api": api,
        "batch": batch,
        "memory": mem,
    }
    aliases = {"jobengine": "throughput-jobengine", "jobengine2": "throughput-jobengine2",
               "rq-simple": "throughput-rq-simple", "rq-worker": "throughput-rq-worker",
               "dramatiq": "throughput-dramatiq", "dramatiq1": "throughput-dramatiq1", "celery": "throughput-celery"}
    peer_keys = {"throughput-dramatiq", "throughput-dramatiq1", "throughput-celery"}
    if args.list:
        print("\n".join(scenarios))
        return 0
    chosen = [aliases.get(k, k) for k in (args.only.split(",") if args.only else scenarios) if k]
    if unknown := [k for k in chosen if k not in scenarios]:
        parser.error(f"unknown scenario(s) {unknown}; see --list")
    print(f"jobengine benchmarks ({'quick' if quick else 'full'}), nproc={os.cpu_count()}", flush=True)
    failed: list[str] = []
    for key in chosen:
        if key in peer_keys and not peers:
            print(f"  skipped {key}: .venv-bench missing (make venv-bench creates it)")
            continue
        try:
            scenarios[key]()
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' figures
            failed.append(key)
            print(f"  {key} FAILED: {exc!r}", flush=True)
    table = judge(RESULTS)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"quick": quick, "nproc": os.cpu_count(), "date": time.strftime("%F %T %z"),
                                          "results": RESULTS, "table": table, "failed": failed}, indent=1))
    return 1 if failed else 0


def judge(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table: every figure, its ratio against its baseline and the target with PASS/FAIL."""
    by = {r["engine"]: r["value"] for r in results}
    dram = [e for e in ("Dramatiq (1 process, 8 threads)", "Dramatiq (1 process, 1 thread)") if e in by]
    best_dramatiq = max(dram, key=lambda e: by[e]) if dram else None

    def ratio(a: str, b: str | None) -> float | None:
        return by[a] / by[b] if b and a in by and b in by and by[b] else None

    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append({**{k: r[k] for k in ("scenario", "engine", "value", "unit")}, "ratio": "", "target": "",
                     "verdict": ""})

    def judged(engine: str, ratio_text: str, target: str, ok: bool | None) -> None:
        for row in rows:
            if row["engine"] == engine:
                if row["target"]:  # a second target on the same figure: its own row
                    row = {**row, "ratio": "", "target": "", "verdict": ""}
                    rows.insert(rows.index(next(x for x in rows if x["engine"] == engine)) + 1, row)
                row.update(ratio=ratio_text, target=target, verdict="" if ok is None else ("PASS" if ok else "FAIL"))
                return

    one = "jobengine, 1 worker"
    if (x := ratio(one, best_dramatiq)) is not None:
        judged(one, f"{x:.2f}x best Dramatiq", ">= 1.5x Dramatiq", x >= 1.5)
    if (x := ratio(one, "RQ SimpleWorker")) is not None:
        judged(one, f"{x:.1f}x RQ SimpleWorker", ">= 10x RQ SimpleWorker", x >= 10)
    if (x := ratio("jobengine, 2 workers", one)) is not None:
        judged("jobengine, 2 workers", f"{x:.2f}x 1 worker", ">= 1.7x 1 worker", x >= 1.7)
    for peer in ("RQ Worker (fork per job)", "Celery (solo pool)", *dram):
        if (x := ratio(one, peer)) is not None:
            judged(peer, f"jobengine 1 worker = {x:.1f}x", "", None)
    if "jobengine API p50" in by:
        judged("jobengine API p50", "", "<= 2 ms", by["jobengine API p50"] <= 2)
    if "jobengine API p99" in by:
        judged("jobengine API p99", "", "<= 10 ms", by["jobengine API p99"] <= 10)
    if (x := ratio("POST /v1/jobs req/s", "no-op FastAPI POST req/s")) is not None:
        judged("POST /v1/jobs req/s", f"{x:.0%} of no-op", ">= 60% of no-op", x >= 0.6)
    if "POST /v1/jobs p99" in by:
        judged("POST /v1/jobs p99", "", "< 25 ms at 64 conns", by["POST /v1/jobs p99"] < 25)
    if (e := "POST /v1/jobs:batch (1,000/request)") in by:
        judged(e, "", ">= 20,000 jobs/s", by[e] >= 20000)
    if (e := "Redis bytes per waiting job") in by:
        judged(e, "", "<= 1 KiB", by[e] <= 1024)
    if (e := "worker RSS at 100% drained") in by and "worker RSS at 5% drained" in by:
        growth = by[e] - by["worker RSS at 5% drained"]
        judged(e, f"{growth:+.1f} MiB", "flat (growth < 5 MiB)", growth < 5)
    print("\n| scenario | engine | figure | unit | ratio | target | verdict |\n| --- | --- | ---: | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['scenario']} | {row['engine']} | {row['value']:,.2f} | {row['unit']} | {row['ratio']} "
              f"| {row['target']} | {row['verdict']} |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
