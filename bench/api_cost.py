"""The API's own work per submitted job, counted in instructions: POST /v1/jobs and POST /v1/jobs:batch.

    .venv/bin/python -m bench.api_cost          # make bench-api: 2,000 single POSTs, 5 batches of 1,000
    .venv/bin/python -m bench.api_cost 500 2    # fewer

Timings of the API move by 30-50 % from one run to the next on this VM, so a change of 10 % in its CPU a
job cannot be told from the noise. This runs the API process (uvicorn, as `make run` does, development
mode) under valgrind's callgrind with instrumentation switched on only while one keep-alive client sends
the measured requests (after warm-up ones), against a native redis-server, and prints the instructions the
API executed per job: the same code gives the same figure within about 1 %. The client and Redis are not
counted. The first row is bench/noop_app.py served the same way (the reference of the API target): the
difference is jobengine's own work a submit. The API runs about 50x slower under valgrind; this measures no throughput.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.redis_cost import callgrind_control, callgrind_total, reap
from bench.run import CHUNK, MAIN_PY, ROOT, env_for, fresh_redis, wait_api
from jobengine.redis_conn import free_port

ADD = {"type": "add", "payload": {"a": 1, "b": 2}}


BACKGROUND_OFF = {"JOBENGINE_SCHEDULER": "false", "JOBENGINE_PAUSED_REFRESH_SECONDS": "60",
                  "JOBENGINE_OPERATIONS_POLL_SECONDS": "60"}


def instructions_while(send: Callable[[httpx.Client], None], warm_up: Callable[[httpx.Client], None],
                       app: str = "jobengine_api", port_variable: str = "JOBENGINE_API_PORT") -> int:
    """Instructions the server (the API, or the no-op app) executes during send(client), after warm_up(client)."""
    workdir = Path(tempfile.mkdtemp(prefix="jobengine-cg-api-"))
    out = workdir / "callgrind.out"
    try:
        with fresh_redis() as server:
            port = free_port()
            api = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", MAIN_PY,
                 "-m", app],
                # the API's background loops (schedules firing, pause refresh) cost per second, not per
                # request: off here, so the figure is the submit's own work however long valgrind takes
                env=env_for(server.url, **{port_variable: str(port)}, **BACKGROUND_OFF), cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_api(f"http://127.0.0.1:{port}", timeout=300)  # (slow to start under valgrind)
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                    warm_up(client)
                    callgrind_control("--instr=on", api.pid)
                    send(client)
                    callgrind_control("--instr=off", api.pid)
            finally:
                api.send_signal(2)  # uvicorn stops on SIGINT; callgrind then writes its file
                reap(api, 300)
        return callgrind_total(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def singles(count: int) -> Callable[[httpx.Client], None]:
    def send(client: httpx.Client) -> None:
        for _ in range(count):
            assert client.post("/v1/jobs", json=ADD).status_code == 202
    return send


def batches(count: int) -> Callable[[httpx.Client], None]:
    body = json.dumps({"jobs": [{"type": "add", "payload": {"a": j, "b": 1}} for j in range(CHUNK)]})

    def send(client: httpx.Client) -> None:
        for _ in range(count):
            resp = client.post("/v1/jobs:batch", content=body, headers={"Content-Type": "application/json"})
            assert resp.status_code == 202 and resp.json()["accepted"] == CHUNK, resp.text[:300]
    return send


def main() -> int:
    args = [int(a) for a in sys.argv[1:3]]
    n_single, n_batch = (args + [2000, 5][len(args):])[:2]
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (make bench-api installs Debian's package)")
    noop = ("bench.noop_app", "BENCH_NOOP_PORT")  # POST /v1/jobs to a FastAPI endpoint that reads the body only
    for label, send, warm, jobs, server in (
        ("no-op FastAPI POST (reference)", singles(n_single), singles(50), n_single, noop),
        ("POST /v1/jobs", singles(n_single), singles(50), n_single, ("jobengine_api", "JOBENGINE_API_PORT")),
        (f"POST /v1/jobs:batch ({CHUNK:,}/request)", batches(n_batch), batches(2), n_batch * CHUNK,
         ("jobengine_api", "JOBENGINE_API_PORT")),
    ):
        total = instructions_while(send, warm, *server)
        print(f"  {label:<34} {total / jobs:>10,.0f} server instructions a job  ({jobs:,} jobs)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
