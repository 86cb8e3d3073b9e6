"""Soak: a steady load through the API for a long time (`make soak`: 10 minutes, not in CI), sampling every
`--interval` seconds the submit latency (POST /v1/jobs -> 202, p50/p99), the end-to-end latency of the jobs
submitted in that interval (enqueued -> ended, p99), the RSS of the API, the worker supervisor and its
executor, Redis' used memory and the queue depth. Writes soak.csv, draws soak.png (matplotlib, from its own
venv .venv-soak) and prints a summary: p99 over the run and RSS growth from the first tenth of the run to the last.

    python -m tests.soak.run --duration 600 --rate 100 --workers 1 --out .run/soak
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from jobengine.jobdata import parse_ts
from tests.chaos.run import KEY, Cluster, Config

ROOT = Path(__file__).resolve().parents[2]
PLOT_PYTHON = ROOT / ".venv-soak" / "bin" / "python"
COLUMNS = ["t", "submitted", "rate", "errors", "submit_p50_ms", "submit_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
           "api_rss_mb", "worker_rss_mb", "executor_rss_mb", "redis_used_mb", "queue_depth"]


def rss_mb(pid: int) -> float:
    """Resident set size of a process from /proc (no psutil needed)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def executor_pid(worker_pid: int) -> int:
    """The worker's executor child (the one that is not multiprocessing's resource tracker)."""
    for child in children(worker_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return child
    return 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Window:
    latencies: list[float]
    ids: list[str]
    errors: int


class Load:
    """Submitter threads at a steady overall rate; each records its latency into the current window."""

    def __init__(self, base_url: str, rate: float, threads: int, duration: float) -> None:
        self.base_url, self.rate, self.threads, self.duration = base_url, rate, threads, duration
        self.lock = threading.Lock()
        self.window = Window([], [], 0)
        self.next_index = 0
        self.start = 0.0
        self.total = int(rate * duration)

    def take(self) -> Window:
        with self.lock:
            window, self.window = self.window, Window([], [], 0)
        return window

    def run_thread(self) -> None:
        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
            while True:
                with self.lock:
                    index = self.next_index
                    self.next_index += 1
                if index >= self.total:
                    return
                delay = self.start + index / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                began = time.perf_counter()
                try:
                    resp = client.post("/v1/jobs", json={"type": "echo", "payload": {"message": f"soak {index}"}})
                    ok = resp.status_code == 202
                    job_id = resp.json()["id"] if ok else ""
                except httpx.HTTPError:
                    ok, job_id = False, ""
                elapsed = time.perf_counter() - began
                with self.lock:
                    if ok:
                        self.window.latencies.append(elapsed)
                        self.window.ids.append(job_id)
                    else:
                        self.window.errors += 1


def e2e_latencies(client: redis.Redis, ids: list[str]) -> list[float]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "enqueued_at", "ended_at")
        rows = pipe.execute()
    out = []
    for enqueued, ended in rows:
        a, b = parse_ts(enqueued), parse_ts(ended)
        if a and b:
            out.append((b - a).total_seconds())
    return out


def soak(duration: float, rate: float, workers: int, interval: float, out: Path, threads: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(Config(workers=workers, log_dir=str(out)), out)
    rows: list[dict] = []
    try:
        cluster.redis.start()
        for _ in range(workers):
            cluster.start_worker()
        for proc in cluster.workers:
            cluster.wait_worker_ready(proc)
        cluster.start_api()
        assert cluster.api is not None
        client = redis.Redis.from_url(cluster.url)
        load = Load(cluster.api_base, rate, threads, duration)
        load.start = time.monotonic()
        pool = [threading.Thread(target=load.run_thread, daemon=True) for _ in range(threads)]
        for t in pool:
            t.start()
        pending: list[str] = []  # ids of the previous window: read their end-to-end latency one interval later
        csv_file = (out / "soak.csv").open("w", newline="")
        writer = csv.DictWriter(csv_file, fieldnames=COLUMNS)
        writer.writeheader()
        submitted = 0
        tick = load.start
        while any(t.is_alive() for t in pool):
            tick += interval
            time.sleep(max(0.0, tick - time.monotonic()))
            window = load.take()
            submitted += len(window.latencies)
            e2e = e2e_latencies(client, pending) if pending else []
            pending = window.ids
            worker_pids = [p.pid for p in cluster.workers]
            row = {
                "t": round(time.monotonic() - load.start, 1), "submitted": submitted,
                "rate": round(len(window.latencies) / interval, 1), "errors": window.errors,
                "submit_p50_ms": round(percentile(window.latencies, 0.5) * 1000, 2),
                "submit_p99_ms": round(percentile(window.latencies, 0.99) * 1000, 2),
                "e2e_p50_ms": round(percentile(e2e, 0.5) * 1000, 2),
                "e2e_p99_ms": round(percentile(e2e, 0.99) * 1000, 2),
                "api_rss_mb": round(rss_mb(cluster.api.pid), 1),
                "worker_rss_mb": round(sum(rss_mb(p) for p in worker_pids), 1),
                "executor_rss_mb": round(sum(rss_mb(executor_pid(p)) for p in worker_pids), 1),
                "redis_used_mb": round(int(client.info("memory")["used_memory"]) / 2**20, 1),
                "queue_depth": client.llen("rq:queue:default"),
            }
            rows.append(row)
            writer.writerow(row)
            csv_file.flush()
            print("soak: " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        csv_file.close()
        client.close()
    finally:
        cluster.stop()
        shutil.rmtree(out / "redis", ignore_errors=True)  # its AOF: hundreds of MB after 10 minutes
    return rows


def summary(rows: list[dict], duration: float) -> str:
    if not rows:
        return "soak: no samples"
    n = max(1, len(rows) // 10)  # the first and the last tenth of the run
    first, last = rows[:n], rows[-n:]

    def avg(rs: list[dict], key: str) -> float:
        return sum(float(r[key]) for r in rs) / len(rs)

    errors = sum(int(r["errors"]) for r in rows)
    lines = [f"soak: {rows[-1]['submitted']} jobs in {rows[-1]['t']:.0f} s, {errors} errors"]
    for key in ("submit_p99_ms", "e2e_p99_ms"):
        values = [float(r[key]) for r in rows if float(r[key]) > 0]
        if values:
            lines.append(f"  {key}: median of windows {percentile(values, 0.5):.1f}, worst window {max(values):.1f}")
    for key in ("api_rss_mb", "worker_rss_mb", "executor_rss_mb", "redis_used_mb"):
        a, b = avg(first, key), avg(last, key)
        growth = (b - a) / a * 100 if a else 0.0
        lines.append(f"  {key}: first tenth {a:.1f}, last tenth {b:.1f} ({growth:+.1f}%)")
    lines.append(f"  queue depth at the end: {rows[-1]['queue_depth']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=100.0, help="submissions per second")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--threads", type=int, default=4, help="client threads sharing the rate")
    parser.add_argument("--out", default=".run/soak")
    ns = parser.parse_args(argv)
    out = Path(ns.out).resolve()
    rows = soak(ns.duration, ns.rate, ns.workers, ns.interval, out, ns.threads)
    text = summary(rows, ns.duration)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    if PLOT_PYTHON.exists():
        subprocess.run([str(PLOT_PYTHON), str(Path(__file__).with_name("plot.py")), str(out / "soak.csv"),
                        str(out / "soak.png")], check=True)
        print(f"soak: {out / 'soak.csv'}, {out / 'soak.png'}")
    else:
        print(f"soak: {out / 'soak.csv'} (no plot: make .venv-soak/.installed for matplotlib)", file=sys.stderr)
    return 0 if rows and not any(int(r["errors"]) for r in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
