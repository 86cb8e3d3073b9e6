"""py-spy profile of one jobengine worker (supervisor + executor) draining N add jobs.

    .venv-bench/bin/pip install py-spy   # once
    .venv/bin/python -m bench.profile_worker 20000 /tmp/worker.collapsed

Writes py-spy's collapsed stacks (one file, both processes) and prints the top functions by own
samples and a few inclusive figures per process. Fresh redis-server on 127.0.0.1, stopped at the end.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.run import BENCH_PY, MAIN_PY, ROOT, env_for, submit_backlog
from jobengine.redis_conn import EmbeddedRedis


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/worker.collapsed")
    pyspy = str(Path(BENCH_PY).parent / "py-spy")
    server = EmbeddedRedis(appendonly=False).start()
    proc = None
    try:
        client = redis.Redis.from_url(server.url)
        submit_backlog(client, n)
        proc = subprocess.Popen([pyspy, "record", "--subprocesses", "--rate", "250", "--format", "raw", "-o", str(out),
                                 "--", MAIN_PY, "-m", "jobengine_worker"],
                                env=env_for(server.url, JOBENGINE_WORKER_NAME="bench-prof"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0, deadline = time.monotonic(), time.monotonic() + 300
        while client.zcard("rq:finished:default") < n and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"{n} jobs in {time.monotonic() - t0:.1f} s (under py-spy, start-up included)")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy stops the worker and writes the profile
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        proc_name = frames[0]
        total[proc_name] += int(count)
        own[f"{proc_name[:40]} | {frames[-1]}"] += int(count)
    print("samples per process:", dict(total))
    for name, c in own.most_common(30):
        print(f"{c:7d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
