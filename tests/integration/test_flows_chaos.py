"""A fan-out of 1,000 jobs with a fan-in parent, while workers are SIGKILLed and Redis is killed and restarted:
the parent runs once, after every child, and reads all 1,000 results (docs/guarantees.md, "Workflows")."""

from __future__ import annotations

import os
import signal

import redis

from tests.support.wait import wait_until

CHILDREN = 1000


def test_fan_out_fan_in_survives_killed_workers_and_a_redis_restart(r, redis_url, redis_server, start_api,
                                                                     start_worker) -> None:  # type: ignore[no-untyped-def]
    api = start_api()
    nodes = [{"name": f"c{i}", "type": "leaf", "payload": {"value": i, "seconds": 0.01, "counter_url": redis_url}}
             for i in range(CHILDREN)]
    nodes.append({"name": "parent", "type": "fan_in", "payload": {"counter_url": redis_url},
                  "depends_on": [f"c{i}" for i in range(CHILDREN)]})
    resp = api.client.post("/v1/flows", json={"nodes": nodes})
    assert resp.status_code == 202, resp.text
    flow_id = resp.json()["id"]
    parent = resp.json()["nodes"][-1]["id"]
    assert resp.json()["nodes"][-1]["status"] == "deferred"

    def finished() -> int:
        try:
            return int(r.zcard("rq:finished:default"))
        except redis.ConnectionError:
            return 0

    workers = [start_worker(), start_worker()]
    wait_until(lambda: finished() >= 150, timeout=60, message="some children to finish")
    assert finished() < 400
    os.killpg(workers[0].pid, signal.SIGKILL)  # mid-batch: claimed jobs, a running one, outcomes not written
    workers.append(start_worker())
    wait_until(lambda: finished() >= 400, timeout=60, message="more children to finish")
    assert finished() < CHILDREN, "the restart came too late to test anything"
    redis_server.restart(hard=True)  # SIGKILL: what the AOF had (fsync'd each second) comes back
    wait_until(lambda: finished() >= 600, timeout=60, message="children to finish after the restart")
    os.killpg(workers[1].pid, signal.SIGKILL)
    assert finished() < CHILDREN, "the second kill came too late to test anything"
    workers.append(start_worker())

    def flow() -> dict:
        got = api.client.get(f"/v1/flows/{flow_id}")
        return got.json() if got.status_code == 200 else {"state": "?"}

    done = wait_until(lambda: (f := flow())["state"] != "running" and f.get("state") != "?" and f, timeout=90,
                      message="the flow to end")
    assert done["state"] == "succeeded", done["counts"]
    assert done["counts"] == {"nodes": CHILDREN + 1, "ended": CHILDREN + 1, "finished": CHILDREN + 1, "failed": 0,
                              "canceled": 0}
    job = api.client.get(f"/v1/jobs/{parent}").json()
    assert job["result"] == {"count": CHILDREN, "total": sum(range(CHILDREN)), "missing": []}
    assert int(r.get(f"test:runs:{parent}")) == 1  # the parent ran once
    started = job["started_at"]
    ended = [api.client.get(f"/v1/jobs/{n['id']}").json()["ended_at"] for n in done["nodes"][:CHILDREN:50]]
    assert all(e < started for e in ended)  # after its children (a sample)
    assert r.zcard("rq:deferred:default") == 0 and r.llen("rq:queue:default") == 0
