"""Webhooks against real processes: the API's delivery loops, the worker, and a receiver on 127.0.0.1 that
verifies every request's signature with the `standardwebhooks` package (tests/support/webhook_receiver.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT
from tests.support.sse import event_ids
from tests.support.wait import wait_until

ALLOW = {"JOBENGINE_WEBHOOKS_ALLOW_PRIVATE": "true", "JOBENGINE_WEBHOOKS_BACKOFF_SECONDS": "0.2"}


class Receiver:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.out, port_file, self.secrets = tmp_path / "got.jsonl", tmp_path / "port", tmp_path / "secrets"
        self.secrets.write_text("")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.webhook_receiver", str(self.out),
                                      str(port_file), str(self.secrets), *args], cwd=ROOT)
        wait_until(port_file.exists, timeout=15, message="the receiver's port")
        self.url = f"http://127.0.0.1:{port_file.read_text()}/hook"

    def trust(self, *secrets: str) -> None:
        self.secrets.write_text("\n".join(secrets))

    def got(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def delivered(self) -> list[dict]:
        return [g for g in self.got() if g["status"] == 200]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def start_receiver(tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[Receiver] = []

    def start(*args: str) -> Receiver:
        started.append(Receiver(tmp_path, *args))
        return started[-1]

    yield start
    for rec in started:
        rec.stop()


@pytest.fixture
def receiver(start_receiver) -> Receiver:  # type: ignore[no-untyped-def]
    return start_receiver()  # type: ignore[no-any-return]


def subscribe(api, url: str, events: list[str] | None = None) -> dict:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/webhooks", json={"url": url, "events": events or []})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def submit(api, payload: dict, **options: object) -> str:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json={"type": "echo", "payload": payload, **options})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]  # type: ignore[no-any-return]


def test_signed_deliveries_log_redeliver_rotation_and_callbacks(start_api, worker, receiver) -> None:
    api = start_api(**ALLOW)
    sub = subscribe(api, receiver.url, ["job.finished", "job.failed"])
    assert sub["secret"].startswith("whsec_") and sub["events"] == ["job.failed", "job.finished"]
    receiver.trust(sub["secret"])
    listed = api.client.get("/v1/webhooks").json()["items"]
    assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]

    ok, bad = submit(api, {"message": "hi"}), submit(api, {"fail": True}, retry={"max_retries": 0})
    wait_until(lambda: len(receiver.delivered()) == 2, timeout=20, message="two deliveries")
    got = {g["body"]["data"]["job_id"]: g for g in receiver.delivered()}
    assert all(g["verified"] for g in got.values())
    assert got[ok]["body"]["type"] == "job.finished" and got[bad]["body"]["type"] == "job.failed"
    assert got[ok]["body"]["data"]["job_type"] == "echo" and got[ok]["body"]["data"]["status"] == "finished"

    log = api.client.get(f"/v1/webhooks/{sub['id']}/deliveries").json()["items"]
    assert {(d["job_id"], d["status"], d["attempts"], d["response_status"]) for d in log} == {
        (ok, "delivered", 1, 200), (bad, "delivered", 1, 200)}
    first = next(d for d in log if d["job_id"] == ok)
    assert first["id"] == got[ok]["id"]  # the delivery id is the webhook-id header

    # rotation: the receiver still trusting only the old secret verifies (both sign during the grace period)
    rotated = api.client.post(f"/v1/webhooks/{sub['id']}:rotate-secret").json()
    assert rotated["secret"] != sub["secret"] and rotated["previous_secret_valid_until"]
    assert api.client.post(f"/v1/webhooks/{sub['id']}/deliveries/{first['id']}:redeliver").status_code == 202
    wait_until(lambda: len(receiver.delivered()) == 3, timeout=20, message="the redelivery")
    again = receiver.delivered()[-1]
    assert again["id"] == first["id"] and again["verified"]
    receiver.trust(rotated["secret"])  # and one trusting only the new secret too
    api.client.post(f"/v1/webhooks/{sub['id']}/deliveries/{first['id']}:redeliver")
    wait_until(lambda: len(receiver.delivered()) == 4, timeout=20, message="the second redelivery")
    assert receiver.delivered()[-1]["verified"]

    # a per-job callback_url: the job's end only, signed with the tenant's callback secret
    assert api.client.patch(f"/v1/webhooks/{sub['id']}", json={"enabled": False}).json()["enabled"] is False
    refused = api.client.post("/v1/jobs", json={"type": "echo", "payload": {}, "callback_url": receiver.url})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "callback_url"  # no secret yet
    callback_secret = api.client.post("/v1/webhooks/callback-secret:rotate").json()["secret"]
    receiver.trust(callback_secret)
    called = submit(api, {"message": "cb"}, callback_url=receiver.url)
    wait_until(lambda: len(receiver.delivered()) == 5, timeout=20, message="the callback")
    last = receiver.delivered()[-1]
    assert last["verified"] and last["body"]["type"] == "job.finished" and last["body"]["data"]["job_id"] == called
    # a job with dependencies (written by another script) keeps its callback_url too
    waiting = submit(api, {"message": "after"}, callback_url=receiver.url, depends_on=[called])
    wait_until(lambda: len(receiver.delivered()) == 6, timeout=20, message="the dependent job's callback")
    assert receiver.delivered()[-1]["body"]["data"]["job_id"] == waiting and receiver.delivered()[-1]["verified"]
    assert api.client.delete(f"/v1/webhooks/{sub['id']}").status_code == 204
    assert api.client.get(f"/v1/webhooks/{sub['id']}").status_code == 404


def test_retries_after_receiver_500s(start_api, worker, start_receiver) -> None:
    receiver = start_receiver("--fail-first", "2")
    api = start_api(**ALLOW)
    sub = subscribe(api, receiver.url, ["job.finished"])
    receiver.trust(sub["secret"])
    job = submit(api, {})
    wait_until(lambda: receiver.delivered(), timeout=20, message="the delivery after two 500s")
    assert [g["status"] for g in receiver.got()] == [500, 500, 200]
    assert all(g["verified"] for g in receiver.got())
    (entry,) = api.client.get(f"/v1/webhooks/{sub['id']}/deliveries").json()["items"]
    assert (entry["job_id"], entry["status"], entry["attempts"]) == (job, "delivered", 3)
    metrics = api.metrics()
    assert 'jobengine_webhook_deliveries_total{outcome="retry"} 2.0' in metrics
    assert 'jobengine_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics


def test_ssrf_guard_refuses_private_addresses(start_api, worker, receiver) -> None:
    api = start_api()  # JOBENGINE_WEBHOOKS_ALLOW_PRIVATE off
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "ftp://example.com/x", "http://user:pw@example.com/x"):
        resp = api.client.post("/v1/webhooks", json={"url": url})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "url", url
    resp = api.client.post("/v1/jobs", json={"type": "echo", "payload": {}, "callback_url": receiver.url})
    assert resp.status_code == 422 and "loopback" in resp.json()["errors"][0]["message"]
    # a name is resolved at each attempt: localhost resolves to loopback, so nothing is sent
    sub = subscribe(api, receiver.url.replace("127.0.0.1", "localhost"), ["job.finished"])
    submit(api, {})
    items = wait_until(lambda: [d for d in api.client.get(f"/v1/webhooks/{sub['id']}/deliveries").json()["items"]
                                if d["status"] == "failed"], timeout=20, message="a refused delivery")
    assert "loopback" in items[0]["error"] and items[0]["attempts"] == 1
    assert receiver.got() == []
    assert 'jobengine_webhook_deliveries_total{outcome="refused"} 1.0' in api.metrics()
    api.client.post("/v1/webhooks/callback-secret:rotate")
    batch = api.client.post("/v1/jobs:batch", json={"jobs": [  # refused for that item alone
        {"type": "echo", "payload": {}}, {"type": "echo", "payload": {}, "callback_url": "http://10.0.0.1/cb"}]})
    assert batch.status_code == 207, batch.text
    results = batch.json()["results"]
    assert "id" in results[0] and results[1]["error"]["errors"][0]["field"] == "callback_url"
    assert results[1]["error"]["instance"].endswith("#/jobs/1")


def test_every_event_delivered_at_least_once_when_delivery_processes_are_killed(
        start_api, start_worker, start_receiver, r: redis.Redis) -> None:
    """Each delivering process is killed while it is the only one and has requests in flight (the receiver takes
    0.2 s an answer): its leased deliveries and unacknowledged entries are taken over by the next one."""
    receiver = start_receiver("--delay", "0.2")
    fast = {**ALLOW, "JOBENGINE_WEBHOOKS_CLAIM_IDLE_SECONDS": "1.5", "JOBENGINE_WEBHOOKS_TIMEOUT_SECONDS": "2"}
    front = start_api(**{**fast, "JOBENGINE_WEBHOOKS": "false"})  # submits; delivers nothing
    sub = subscribe(front, receiver.url)  # every event type
    receiver.trust(sub["secret"])
    start_worker()
    jobs = [submit(front, {"message": str(i)}) for i in range(20)]
    for _ in range(2):
        victim = start_api(**fast)  # the only delivering process, until killed
        wait_until(lambda n=len(receiver.got()): len(receiver.got()) >= n + 5, timeout=20, message="deliveries")
        victim.proc.signal(signal.SIGKILL)
    start_api(**fast)  # the survivor
    wait_until(lambda: len(event_ids(r, "jobengine:events:default")) == 60, timeout=20,
               message="every job's 3 events")
    events = set(event_ids(r, "jobengine:events:default"))

    def delivered_events() -> set[str]:
        return {g["body"]["data"]["id"] for g in receiver.delivered()}

    wait_until(lambda: delivered_events() >= events, timeout=60, message="every event delivered")
    got = receiver.got()
    assert all(g["verified"] for g in got)
    assert {g["body"]["data"]["job_id"] for g in got} == set(jobs)
    # the job type: from the job's queued entry, or read from its hash by a process that never saw that entry
    assert {g["body"]["data"]["job_type"] for g in got} == {"echo"}
    ids = [g["id"] for g in got]
    assert len(ids) > len(set(ids))  # answered to a killed process, so sent again: at least once, not at most
