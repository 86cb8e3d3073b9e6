"""Redis's own work per job, counted in instructions: jobengine (one worker) next to RQ SimpleWorker.

    .venv/bin/python -m bench.redis_cost            # 4,000 jobs each (make bench-redis)
    .venv/bin/python -m bench.redis_cost 10000
    .venv/bin/python -m bench.redis_cost 4000 --waiting 1000000   # jobengine only, draining the oldest
                                                                   # 4,000 of 1,000,000 waiting jobs
    .venv/bin/python -m bench.redis_cost 4000 --tenant acme        # jobengine only, jobs of a tenant (as the
                                                                   # API writes them), nobody listening
    .venv/bin/python -m bench.redis_cost 4000 --tenant acme --listened   # the same with their events written

Redis is the one part every worker shares, so its work per job caps what any number of workers can do
together. This runs redis-server under valgrind's callgrind (Debian's valgrind; `make bench-redis` installs
it when missing) with instrumentation switched on only while the worker drains the middle 90 % of a backlog
of trivial add jobs, and prints the instructions Redis executed per job, and the Redis commands per job
(INFO commandstats; jobengine's include those its Lua scripts call). An instruction count does not depend
on the machine's speed or on what else runs: the same code gives the same figure within about 1 %, so two
commits can be compared without the noise of timings. Redis runs about 50x slower under valgrind; the
worker does not wait less for it, so this measures no throughput.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from bench.run import processes, rq_enqueue, rq_worker, start_jobengine_worker, submit_backlog
from jobengine.redis_conn import EmbeddedRedis, free_port, redis_server_binary


def drain_under_callgrind(n: int, enqueue: Callable[[redis.Redis], object],
                          worker: Callable[[str], subprocess.Popen],
                          server_args: Sequence[str] = ()) -> tuple[int, int, float]:
    """(instructions, jobs measured, Redis commands a job) for one worker draining n jobs; server_args are
    added to redis-server's (an RDB file to load, for instance)."""
    workdir = Path(tempfile.mkdtemp(prefix="jobengine-cg-"))
    out = workdir / "callgrind.out"
    port = free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
         "--appendonly", "no", "--stream-node-max-bytes", "512", *server_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_until(ping(client), timeout=900)  # loading a big RDB under valgrind takes minutes
        enqueue(client)
        done = lambda: client.zcard("rq:finished:default")  # noqa: E731
        with processes() as procs:
            procs.append(worker(url))
            wait_until(lambda: done() >= n // 20)
            client.config_resetstat()
            callgrind_control("--instr=on", server.pid)
            first = done()
            wait_until(lambda: done() >= n * 19 // 20)
            callgrind_control("--instr=off", server.pid)
            jobs = done() - first
            commands = sum(v["calls"] for k, v in client.info("commandstats").items()
                           if k not in ("cmdstat_zcard", "cmdstat_config|resetstat", "cmdstat_info"))
    finally:
        with contextlib.suppress(redis.ConnectionError):  # SHUTDOWN closes the connection; callgrind then writes
            client.shutdown(nosave=True)
        reap(server, 120)
        totals = annotate(out)  # (read before the folder goes; parsed after, so a failed run's error shows)
        shutil.rmtree(workdir, ignore_errors=True)
    return program_total(totals), jobs, commands / max(1, jobs)


def callgrind_control(option: str, pid: int) -> None:
    """Switch instrumentation of a process running under callgrind on or off (--instr=on|off)."""
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def reap(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for a process asked to stop (callgrind writes its file as it exits); kill it past the timeout."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def callgrind_total(out: Path) -> int:
    """The instructions counted in a callgrind output file."""
    return program_total(annotate(out))


def annotate(out: Path) -> str:
    """callgrind_annotate's report of an output file ('' when there is none)."""
    return subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True).stdout


def program_total(totals: str) -> int:
    match = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", totals, re.M) or \
        re.search(r"^([\d,]+)\s+PROGRAM TOTALS", totals, re.M)
    if not match:
        raise RuntimeError("no totals in callgrind's output")
    return int(match.group(1).replace(",", ""))


def ping(client: redis.Redis) -> Callable[[], bool]:
    def answers() -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
            return False
    return answers


def wait_until(condition: Callable[[], bool], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the drain did not finish in time")
        time.sleep(0.05)


def backlog_rdb(directory: Path, waiting: int) -> list[str]:
    """A dump.rdb of `waiting` add jobs, written by a native Redis (filling it under valgrind would take
    hours); returns the redis-server arguments that load it."""
    server = EmbeddedRedis(directory=str(directory), appendonly=False)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, waiting)
        client.save()
        client.close()
    finally:
        server.stop()
    return ["--dir", str(directory), "--dbfilename", "dump.rdb"]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 4000
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (make bench-redis installs Debian's package)")
    if "--waiting" in sys.argv:
        waiting = int(sys.argv[sys.argv.index("--waiting") + 1])
        with tempfile.TemporaryDirectory(prefix="jobengine-cg-backlog-") as directory:
            server_args = backlog_rdb(Path(directory), waiting)
            instructions, jobs, commands = drain_under_callgrind(
                n, lambda c: None, lambda url: start_jobengine_worker(url, "cg"), server_args)
        print(f"  jobengine, 1 worker, {waiting:,} waiting {instructions / jobs:>12,.0f} Redis instructions a job"
              f"  {commands:5.1f} commands a job  ({jobs:,} jobs)", flush=True)
        return 0
    if "--tenant" in sys.argv:  # jobs of a tenant, as the API writes them: each also has its events (lua/_events.lua)
        tenant = sys.argv[sys.argv.index("--tenant") + 1]
        listened = "--listened" in sys.argv  # someone listens: the jobs' events are written (keys.events_listened)

        def enqueue(client: redis.Redis) -> float:
            if listened:
                client.set(f"jobengine:listened:{tenant}", 1)
            return submit_backlog(client, n, tenant=tenant)

        instructions, jobs, commands = drain_under_callgrind(n, enqueue, lambda url: start_jobengine_worker(url, "cg"))
        what = "tenant jobs, listened" if listened else "tenant jobs"
        print(f"  jobengine, 1 worker, {what} {instructions / jobs:>12,.0f} Redis instructions a job"
              f"  {commands:5.1f} commands a job  ({jobs:,} jobs)", flush=True)
        return 0
    rows = []
    for engine, enqueue, worker in (
        ("jobengine, 1 worker", lambda c: submit_backlog(c, n), lambda url: start_jobengine_worker(url, "cg")),
        ("RQ SimpleWorker", lambda c: rq_enqueue(c, n), lambda url: rq_worker(url, "rq.worker.SimpleWorker")),
    ):
        instructions, jobs, commands = drain_under_callgrind(n, enqueue, worker)
        rows.append((engine, instructions / jobs, commands))
        print(f"  {engine:<22} {instructions / jobs:>12,.0f} Redis instructions a job  {commands:5.1f} commands a job"
              f"  ({jobs:,} jobs)", flush=True)
    print(f"  RQ SimpleWorker / jobengine: {rows[1][1] / rows[0][1]:.2f}x the Redis instructions a job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
