"""Workflows: a fan-out/fan-in flow of --children jobs plus one parent that depends on all of them, submitted in
one POST /v1/flows and drained by --workers workers.

    .venv/bin/python -m bench.flows_bench                 # 10,000 children (make bench-flows)
    .venv/bin/python -m bench.flows_bench --children 200  # a quick look

Printed: the submit time (the request, whose one flow.lua call writes every job and edge), how long that script
held Redis (SLOWLOG), and the end-to-end time from the submit until the flow's state is `succeeded` (every child
run, the parent released by the last one, its 10,000 dependency results read by the worker, the parent run).
The job is bench.jobs' add (the benchmarks' trivial job), so the figures are the platform's own cost.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import httpx
import redis

from bench.run import MAIN_PY, ROOT, env_for, fresh_redis, processes, start_jobengine_worker, wait_api
from jobengine.redis_conn import free_port


def flow_body(children: int) -> dict:
    nodes = [{"name": f"c{i}", "type": "add", "payload": {"a": i, "b": 1}} for i in range(children)]
    nodes.append({"name": "parent", "type": "add", "payload": {"a": 0, "b": 0},
                  "depends_on": [f"c{i}" for i in range(children)]})
    return {"nodes": nodes}


def run(children: int, workers: int) -> None:
    body = flow_body(children)
    with fresh_redis() as server, processes() as procs:
        client = redis.Redis.from_url(server.url)
        port = free_port()
        limits = {"JOBENGINE_MAX_BODY_BYTES": str(64 * 1024 * 1024),
                  "JOBENGINE_FLOW_MAX_NODES": str(children + 1), "JOBENGINE_FLOW_MAX_EDGES": str(children)}
        procs.append(subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL,
                                      env=env_for(server.url, JOBENGINE_API_PORT=str(port), **limits)))
        base = f"http://127.0.0.1:{port}"
        procs += [start_jobengine_worker(server.url, f"bench-flow-{i}") for i in range(workers)]
        wait_api(base)
        while client.scard("rq:workers") < workers:  # the workers wait, registered, before the submit
            time.sleep(0.05)
        # 1 ms: the workers' short script calls stay out of the log, the flow's one long call is in it
        client.config_set("slowlog-log-slower-than", 1000)
        client.slowlog_reset()
        with httpx.Client(base_url=base, timeout=300) as http:
            start = time.perf_counter()
            resp = http.post("/v1/flows", json=body)
            submitted = time.perf_counter() - start
            resp.raise_for_status()
            flow_id = resp.json()["id"]
            script_us = max((e["duration"] for e in client.slowlog_get(1024)
                             if b"EVALSHA" in e["command"] or b"EVAL" in e["command"]), default=0)
            client.config_set("slowlog-log-slower-than", 10_000)
            print(f"flows: submit of {children} children + 1 fan-in parent: {submitted:.2f} s "
                  f"(the flow.lua call held Redis {script_us / 1e6:.2f} s)")
            while True:
                state = http.get(f"/v1/flows/{flow_id}").json()["state"]
                if state != "running":
                    break
                if time.perf_counter() - start > 600:
                    raise SystemExit("flows: not ended after 600 s")
                time.sleep(0.05)
            e2e = time.perf_counter() - start
        assert state == "succeeded", state
        print(f"flows: end to end (submit to the flow succeeded, {workers} workers): {e2e:.2f} s; "
              f"{(children + 1) / e2e:.0f} jobs/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=10_000, help="jobs of the fan-out")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    run(args.children, args.workers)


if __name__ == "__main__":
    main()
