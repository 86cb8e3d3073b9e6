"""Workflows through the real API and worker processes: depends_on, flows, each dependency policy, fan-in
results, cancel and retry of a flow, tenant isolation across edges, refusals (docs/guarantees.md, "Workflows")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY, key_entry, write_key_file
from tests.support.wait import wait_until

OTHER = "other-key.other-secret-0123456789abcdef0123456789abcdef"


def post(api, path: str, body: dict[str, Any], status: int = 202) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = api.client.post(path, json=body)
    assert resp.status_code == status, resp.text
    return resp.json()  # type: ignore[no-any-return]


def job(api, job_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = api.client.get(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def flow(api, flow_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = api.client.get(f"/v1/flows/{flow_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def flow_ended(api, flow_id: str, timeout: float = 30) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return wait_until(lambda: (f := flow(api, flow_id))["state"] != "running" and f,  # type: ignore[return-value]
                      timeout=timeout, message=f"flow {flow_id} to end")


def node(f: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in f["nodes"] if n["name"] == name)


def leaf(name: str, value: int = 1, *, fail: bool = False, deps: list[Any] | None = None, **extra: Any
         ) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": "leaf", "payload": {"value": value, "fail": fail}, **extra}
    if deps is not None:
        body["depends_on"] = deps
    return body


def test_depends_on_defers_then_queues_and_fans_in(api, worker) -> None:  # type: ignore[no-untyped-def]
    a = post(api, "/v1/jobs", {"type": "leaf", "payload": {"value": 2}})["id"]
    b = post(api, "/v1/jobs", {"type": "leaf", "payload": {"value": 3}})["id"]
    c = post(api, "/v1/jobs", {"type": "fan_in", "payload": {}, "depends_on": [a, {"id": b, "on": "success"}]})
    assert c["status"] in ("deferred", "queued")
    done = wait_until(lambda: (j := job(api, c["id"]))["status"] == "finished" and j, message="fan-in")
    assert done["result"] == {"count": 2, "total": 5, "missing": []}
    # a dependency already finished: queued at once
    d = post(api, "/v1/jobs", {"type": "fan_in", "payload": {}, "depends_on": [c["id"]]})
    assert d["status"] == "queued"


def test_depends_on_refusals(api, start_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = post(api, "/v1/jobs", {"type": "leaf", "payload": {}})["id"]
    resp = api.client.post("/v1/jobs", json={"type": "leaf", "payload": {}, "depends_on": ["0" * 32]})
    assert resp.status_code == 404, resp.text
    resp = api.client.post("/v1/jobs", json={"type": "leaf", "payload": {}, "depends_on": [a], "delay_seconds": 5})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "depends_on"
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [{"type": "leaf", "payload": {}, "depends_on": [a]}]})
    assert resp.json()["results"][0]["error"]["errors"][0]["field"] == "depends_on"


def test_cross_tenant_depends_on_is_404(start_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(OTHER, tenant="other")])
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys))
    theirs = httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {OTHER}"}, timeout=30)
    other_job = theirs.post("/v1/jobs", json={"type": "leaf", "payload": {}}).json()["id"]
    resp = api.client.post("/v1/jobs", json={"type": "leaf", "payload": {}, "depends_on": [other_job]})
    assert resp.status_code == 404, resp.text
    assert other_job in resp.json()["detail"]
    # nothing was written: the other tenant's job has no dependents
    flow_resp = theirs.post("/v1/flows", json={"nodes": [leaf("x")]})
    assert flow_resp.status_code == 202
    assert api.client.get(f"/v1/flows/{flow_resp.json()['id']}").status_code == 404
    assert api.client.delete(f"/v1/flows/{flow_resp.json()['id']}").status_code == 404
    theirs.close()


def test_flow_refused_whole(api, r) -> None:  # type: ignore[no-untyped-def]
    before = r.dbsize()
    cases = [
        ({"nodes": [leaf("a", deps=["b"]), leaf("b", deps=["a"])]}, "nodes.0.depends_on", "cycle"),
        ({"nodes": [leaf("a"), leaf("a")]}, "nodes.1.name", "duplicate"),
        ({"nodes": [leaf("a", deps=["zz"])]}, "nodes.0.depends_on.0", "no node"),
        ({"nodes": [leaf("a"), {"name": "b", "type": "leaf", "payload": {"value": "x"}}]}, "nodes.1.payload.value",
         ""),
        ({"nodes": [leaf("a"), {"name": "b", "type": "nope", "payload": {}}]}, "nodes.1.type", ""),
    ]
    for body, field, words in cases:
        resp = api.client.post("/v1/flows", json=body)
        assert resp.status_code == 422, resp.text
        errors = resp.json()["errors"]
        assert errors[0]["field"] == field, errors
        assert words in errors[0]["message"]
    assert r.dbsize() == before  # nothing written


def test_flow_limits(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(JOBENGINE_FLOW_MAX_NODES="3", JOBENGINE_FLOW_MAX_DEPTH="2", JOBENGINE_FLOW_MAX_EDGES="2")
    resp = api.client.post("/v1/flows", json={"nodes": [leaf(f"n{i}") for i in range(4)]})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "nodes"
    resp = api.client.post("/v1/flows", json={"nodes": [leaf("a"), leaf("b", deps=["a"]), leaf("c", deps=["b"])]})
    assert resp.status_code == 422 and "JOBENGINE_FLOW_MAX_DEPTH" in resp.json()["errors"][0]["message"]
    resp = api.client.post("/v1/flows", json={"nodes": [leaf("a"), leaf("b"), leaf("c", deps=["a", "b"]),
                                                        ]})
    assert resp.status_code == 202
    resp = api.client.post("/v1/flows", json={"nodes": [leaf("a"), leaf("b", deps=["a"]), leaf("c", deps=["a", "b"])]})
    assert resp.status_code == 422 and "JOBENGINE_FLOW_MAX_EDGES" in resp.json()["errors"][0]["message"]


def test_chain_of_100(api, worker) -> None:  # type: ignore[no-untyped-def]
    nodes = [leaf("n0", 0)] + [leaf(f"n{i}", i, deps=[f"n{i - 1}"]) for i in range(1, 100)]
    sent = post(api, "/v1/flows", {"nodes": nodes})
    assert [n["status"] for n in sent["nodes"]] == ["queued"] + ["deferred"] * 99
    f = flow_ended(api, sent["id"])
    assert f["state"] == "succeeded" and f["counts"]["finished"] == 100
    ids = [n["id"] for n in f["nodes"]]
    started = [job(api, i)["started_at"] for i in ids]
    assert started == sorted(started)  # each ran after the one it depends on
    listed = api.client.get("/v1/jobs", params={"flow": sent["id"], "limit": 60}).json()
    assert len(listed["items"]) == 60 and listed["next_cursor"]
    rest = api.client.get("/v1/jobs", params={"flow": sent["id"], "cursor": listed["next_cursor"]}).json()
    assert [i["id"] for i in listed["items"] + rest["items"]] == ids
    scrape = api.metrics()
    assert 'jobengine_flows_total{outcome="succeeded"} 1.0' in scrape
    assert 'jobengine_jobs_deferred{queue="default"} 0.0' in scrape


def test_policies(api, worker) -> None:  # type: ignore[no-untyped-def]
    """A failed root: `success` edges end the dependent by its policy (failed, or canceled), cascading down a
    chain; an `any` edge runs it anyway and its fan-in sees no result for the failed one."""
    sent = post(api, "/v1/flows", {"nodes": [
        leaf("bad", fail=True), leaf("good", 5),
        leaf("fails", deps=["bad"]), leaf("after_fails", deps=["fails"]),
        leaf("cancels", deps=["bad"], on_dependency_failure="cancel"),
        {"name": "anyway", "type": "fan_in", "payload": {}, "depends_on": [{"name": "bad", "on": "any"}, "good"]},
    ]})
    f = flow_ended(api, sent["id"])
    assert f["state"] == "failed"
    states = {n["name"]: n["status"] for n in f["nodes"]}
    assert states == {"bad": "failed", "good": "finished", "fails": "failed", "after_fails": "failed",
                      "cancels": "canceled", "anyway": "finished"}
    anyway = job(api, node(f, "anyway")["id"])
    assert anyway["result"] == {"count": 1, "total": 5, "missing": ["bad"]}
    assert "DependencyFailed" in job(api, node(f, "fails")["id"])["error"]
    assert job(api, node(f, "fails")["id"])["attempts"] == 0  # never ran


def test_failed_after_retries_releases(api, worker) -> None:  # type: ignore[no-untyped-def]
    sent = post(api, "/v1/flows", {"nodes": [
        {"name": "r", "type": "leaf_retried", "payload": {"fail": True}},
        {"name": "d", "type": "fan_in", "payload": {}, "depends_on": [{"name": "r", "on": "any"}]},
    ]})
    f = flow_ended(api, sent["id"])
    assert job(api, node(f, "r")["id"])["attempts"] == 3
    assert node(f, "d")["status"] == "finished"


def test_cancel_and_retry_of_a_flow(api, worker, redis_url) -> None:  # type: ignore[no-untyped-def]
    # retry: a failed node retried revives the dependents its failure ended, and the flow resumes
    sent = post(api, "/v1/flows", {"nodes": [leaf("bad", fail=True), leaf("mid", deps=["bad"]),
                                             {"name": "end", "type": "fan_in", "payload": {}, "depends_on": ["mid"]}]})
    f = flow_ended(api, sent["id"])
    assert f["state"] == "failed" and f["counts"]["failed"] == 3
    # make the retried node succeed: its payload is fixed at submit, so retry a node whose failure was external
    bad = node(f, "bad")["id"]
    import redis as _redis

    from jobengine.jobdata import encode_data
    client = _redis.Redis.from_url(redis_url)
    client.hset(f"rq:job:{bad}", "data", encode_data("tests.support.flowjobs.leaf", {"value": 7, "fail": False}))
    client.close()
    # a dependent retried while its required dependency is still failed ends again at once, by its policy,
    # without running, and the answer says so (not "queued")
    again = api.client.post(f"/v1/jobs/{node(f, 'mid')['id']}/retry")
    assert again.status_code == 202 and again.json()["status"] == "failed", again.text
    assert api.client.post(f"/v1/jobs/{bad}/retry").json()["status"] == "queued"
    f = flow_ended(api, sent["id"])
    assert f["state"] == "succeeded", f
    assert job(api, node(f, "end")["id"])["result"]["total"] == 1

    # cancel: what waits is canceled, what runs is stopped
    sent = post(api, "/v1/flows", {"nodes": [
        {"name": "slow", "type": "gated", "payload": {"redis_url": redis_url}},
        leaf("next", deps=["slow"]), leaf("last", deps=["next"])]})
    slow = node(sent, "slow")["id"]
    wait_until(lambda: job(api, slow)["status"] == "started", message="the gated node to start")
    resp = api.client.delete(f"/v1/flows/{sent['id']}")
    assert resp.status_code == 200 and resp.json()["canceled"] == 2 and resp.json()["stopping"] == 1
    f = flow_ended(api, sent["id"])
    assert f["state"] == "canceled"
    assert {n["status"] for n in f["nodes"]} == {"canceled"}


def test_a_dependency_recovered_as_failed_after_sigkill_ends_its_dependent(api, start_worker, redis_url
                                                                            ) -> None:  # type: ignore[no-untyped-def]
    """The worker running a dependency is SIGKILLed; past JOBENGINE_MAX_RECOVERIES the recovery fails it (the
    recover script, through end_job): its dependent ends by its policy, its `any` dependent runs."""
    import os
    import signal

    doomed = start_worker(JOBENGINE_MAX_RECOVERIES="0")
    sent = post(api, "/v1/flows", {"nodes": [
        {"name": "held", "type": "gated", "payload": {"redis_url": redis_url}},
        leaf("after", deps=["held"], on_dependency_failure="cancel"),
        {"name": "anyway", "type": "fan_in", "payload": {}, "depends_on": [{"name": "held", "on": "any"}]}]})
    held = node(sent, "held")["id"]
    wait_until(lambda: job(api, held)["status"] == "started", message="the gated node to start")
    os.killpg(doomed.pid, signal.SIGKILL)
    start_worker(JOBENGINE_MAX_RECOVERIES="0")
    f = flow_ended(api, sent["id"])
    assert {n["name"]: n["status"] for n in f["nodes"]} == {"held": "failed", "after": "canceled",
                                                            "anyway": "finished"}
    assert f["state"] == "failed"


def test_flow_idempotency_key(api, r) -> None:  # type: ignore[no-untyped-def]
    body = {"nodes": [leaf("a"), leaf("b", deps=["a"])]}
    first = api.client.post("/v1/flows", json=body, headers={"Idempotency-Key": "flow-1"})
    assert first.status_code == 202
    again = api.client.post("/v1/flows", json=body, headers={"Idempotency-Key": "flow-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [n["id"] for n in again.json()["nodes"]] == [n["id"] for n in first.json()["nodes"]]
    assert len(r.keys("jobengine:flow:*")) == 1
    other = api.client.post("/v1/flows", json={"nodes": [leaf("x")]}, headers={"Idempotency-Key": "flow-1"})
    assert other.status_code == 409
