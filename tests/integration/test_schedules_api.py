"""/v1/schedules on the real API against a real Redis: CRUD, validation naming the field, tenant isolation,
pause/resume/trigger, history with the jobs' outcomes, a schedule whose job type left the catalog, and
backpressure (refused, counted, tried again)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis

from tests.conftest import TEST_KEY, key_entry, write_key_file
from tests.support.wait import wait_until

OTHER_KEY = "other-tenant.other-secret-0123456789abcdef0123456789abcdef"
READER_KEY = "reader-only.reader-secret-0123456789abcdef0123456789abcd"
EVERY_SECOND = {"name": "tick", "type": "counted", "payload": {}, "interval_seconds": 1}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_key_file(tmp_path / "keys.json", [key_entry(TEST_KEY), key_entry(OTHER_KEY, tenant="other"),
                                                   key_entry(READER_KEY, scopes=("read",))])


def fields(resp) -> set[str]:  # type: ignore[no-untyped-def]
    return {e["field"] for e in resp.json().get("errors", [])}


def test_create_read_list_change_delete(start_api, keys_file: Path) -> None:
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_SCHEDULER="false")
    c = api.client
    resp = c.post("/v1/schedules", json={"name": "nightly", "type": "counted", "payload": {"seconds": 0},
                                         "cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == "/v1/schedules/nightly"
    body = resp.json()
    assert body["state"] == "active" and body["source"] == "api" and body["version"] == 1
    assert body["next_run_at"] is not None
    assert c.post("/v1/schedules", json={"name": "nightly", "type": "counted", "cron": "* * * * *"}).status_code == 409

    detail = c.get("/v1/schedules/nightly", params={"next": 3}).json()
    assert len(detail["next_runs"]) == 3 and detail["runs"] == []
    assert all(t[11:19] in ("00:30:00", "01:30:00") for t in detail["next_runs"]), detail["next_runs"]  # 02:30 Berlin

    for i in range(3):
        assert c.post("/v1/schedules", json={**EVERY_SECOND, "name": f"s{i}", "paused": True}).status_code == 201
    page = c.get("/v1/schedules", params={"limit": 2}).json()
    assert [s["name"] for s in page["items"]] == ["nightly", "s0"] and page["next_cursor"]
    page2 = c.get("/v1/schedules", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["name"] for s in page2["items"]] == ["s1", "s2"] and page2["next_cursor"] is None
    assert c.get("/v1/schedules", params={"cursor": "!!"}).status_code == 422

    resp = c.patch("/v1/schedules/nightly", json={"interval_seconds": 3600})
    assert resp.status_code == 200, resp.text
    assert resp.json()["cron"] is None and resp.json()["interval_seconds"] == 3600 and resp.json()["version"] == 2
    resp = c.patch("/v1/schedules/nightly", json={"payload": {"seconds": -1}})
    assert resp.status_code == 422 and fields(resp) == {"payload.seconds"}
    assert c.patch("/v1/schedules/nightly", json={"name": "other"}).status_code == 422

    assert c.delete("/v1/schedules/nightly").status_code == 204
    assert c.get("/v1/schedules/nightly").status_code == 404
    assert c.delete("/v1/schedules/nightly").status_code == 404


INVALID = [
    ({"name": "x", "type": "counted", "cron": "61 * * * *"}, "cron"),
    ({"name": "x", "type": "counted", "cron": "* * * *"}, "cron"),
    ({"name": "x", "type": "counted", "cron": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
    ({"name": "x", "type": "counted", "interval_seconds": 0}, "interval_seconds"),
    ({"name": "x", "type": "counted"}, "body"),  # neither cron nor interval
    ({"name": "x", "type": "counted", "cron": "* * * * *", "interval_seconds": 5}, "body"),
    ({"name": "x", "type": "counted", "interval_seconds": 5, "payload": {"seconds": "slow"}}, "payload.seconds"),
    ({"name": "x", "type": "nope", "interval_seconds": 5}, "type"),
    ({"name": "x", "type": "counted", "interval_seconds": 5, "queue": "nowhere"}, "queue"),
    ({"name": "x y", "type": "counted", "interval_seconds": 5}, "name"),
    ({"name": "x", "type": "counted", "interval_seconds": 5, "overlap": "sometimes"}, "overlap"),
    ({"name": "x", "type": "counted", "interval_seconds": 5, "catch_up": "never"}, "catch_up"),
    ({"name": "x", "type": "counted", "interval_seconds": 5, "start_at": "1900-01-01T00:00:00Z"}, "start_at"),
]


def test_an_invalid_schedule_is_a_422_naming_the_field(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(JOBENGINE_SCHEDULER="false")
    for body, field in INVALID:
        resp = api.client.post("/v1/schedules", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert field in fields(resp), (body, resp.json())
    resp = api.client.post("/v1/schedules", content=b"{", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and fields(resp) == {"body"}
    resp = api.client.post("/v1/schedules", content=b"name=x", headers={"content-type": "text/plain"})
    assert resp.status_code == 415
    assert api.client.get("/v1/schedules").json()["items"] == []  # nothing was written


def test_another_tenants_schedule_is_a_404_and_scopes_are_checked(start_api, keys_file: Path) -> None:
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_SCHEDULER="false")
    assert api.client.post("/v1/schedules", json={**EVERY_SECOND, "paused": True}).status_code == 201
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    for method, path in [("GET", "/v1/schedules/tick"), ("PATCH", "/v1/schedules/tick"),
                         ("DELETE", "/v1/schedules/tick"), ("POST", "/v1/schedules/tick:trigger"),
                         ("POST", "/v1/schedules/tick:pause"), ("POST", "/v1/schedules/tick:resume")]:
        resp = api.client.request(method, path, headers=other, json={} if method == "PATCH" else None)
        assert resp.status_code == 404, (method, path, resp.text)
    assert api.client.get("/v1/schedules", headers=other).json()["items"] == []
    # the same name in another tenant is another schedule
    assert api.client.post("/v1/schedules", json={**EVERY_SECOND, "paused": True}, headers=other).status_code == 201
    reader = {"Authorization": f"Bearer {READER_KEY}"}
    assert api.client.get("/v1/schedules/tick", headers=reader).status_code == 200
    assert api.client.post("/v1/schedules/tick:trigger", headers=reader).status_code == 403
    assert api.client.delete("/v1/schedules/tick", headers=reader).status_code == 403


def test_pause_resume_trigger_and_history_with_outcomes(start_api, worker, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_SCHEDULER_INTERVAL_SECONDS="0.2")
    c = api.client
    assert c.post("/v1/schedules", json=EVERY_SECOND).status_code == 201

    def enqueued() -> list[dict]:
        return [run for run in c.get("/v1/schedules/tick").json()["runs"] if run["outcome"] == "enqueued"]

    runs = wait_until(lambda: len(enqueued()) >= 2 and enqueued(), timeout=15, message="two fired ticks")
    job = c.get(f"/v1/jobs/{runs[-1]['job_id']}?wait=10").json()
    assert job["status"] == "finished"
    wait_until(lambda: enqueued()[-1]["job_status"] == "finished", message="the run's job status in the history")
    ticks = [run["tick"] for run in enqueued()]
    assert len(set(ticks)) == len(ticks)

    paused = c.post("/v1/schedules/tick:pause").json()
    assert paused["state"] == "paused" and paused["paused"] is True and paused["next_run_at"] is None
    assert c.get("/v1/schedules/tick").json()["next_runs"] == []
    count = len(enqueued())
    resp = c.post("/v1/schedules/tick:trigger")
    assert resp.status_code == 202, resp.text
    triggered = resp.json()["id"]
    assert c.get(f"/v1/jobs/{triggered}?wait=10").json()["status"] == "finished"
    detail = c.get("/v1/schedules/tick").json()
    assert detail["runs"][0]["outcome"] == "triggered" and detail["runs"][0]["job_id"] == triggered
    assert len(enqueued()) == count  # paused: no tick fired meanwhile

    resumed = c.post("/v1/schedules/tick:resume").json()
    assert resumed["state"] == "active" and resumed["next_run_at"] is not None
    wait_until(lambda: len(enqueued()) > count, timeout=10, message="ticks after resume")
    text = api.metrics()
    assert 'jobengine_schedules{state="active"} 1.0' in text
    assert "jobengine_schedule_lateness_seconds_count" in text


def test_a_schedule_whose_job_type_left_the_catalog_is_reported_broken(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_SCHEDULER="false")
    assert api.client.post("/v1/schedules", json=EVERY_SECOND).status_code == 201
    api.proc.stop()
    # the same Redis, an API whose catalog lacks the type (the test types are not loaded)
    narrow = start_api(JOBENGINE_JOB_TYPE_MODULES="", JOBENGINE_SCHEDULER_INTERVAL_SECONDS="0.2",
                       JOBENGINE_SCHEDULE_BROKEN_RETRY_SECONDS="0.5")
    detail = wait_until(lambda: (d := narrow.client.get("/v1/schedules/tick").json())["state"] == "broken" and d,
                        timeout=10, message="the schedule reported broken")
    assert "counted" in detail["error"]
    assert detail["runs"][0]["outcome"] == "broken"
    assert narrow.proc.alive()
    assert narrow.client.get("/v1/schedules").status_code == 200
    assert narrow.client.post("/v1/schedules/tick:trigger").status_code == 409
    assert 'jobengine_schedules{state="broken"} 1.0' in narrow.metrics()
    # an API that knows the type again fires it
    narrow.proc.stop()
    again = start_api(JOBENGINE_SCHEDULER_INTERVAL_SECONDS="0.2")
    wait_until(lambda: again.client.get("/v1/schedules/tick").json()["state"] == "active", timeout=10,
               message="the schedule active again")


def test_backpressure_refusal_is_counted_and_the_tick_retried(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_MAX_QUEUE_BACKLOG="1", JOBENGINE_SCHEDULER_INTERVAL_SECONDS="0.2")
    c = api.client
    assert c.post("/v1/jobs", json={"type": "counted", "payload": {}}).status_code == 202  # the queue is full
    assert c.post("/v1/schedules", json=EVERY_SECOND).status_code == 201
    wait_until(lambda: c.get("/v1/schedules/tick").json()["refused"] >= 2, timeout=10, message="refusals")
    assert 'jobengine_schedule_fires_total{outcome="refused_backpressure"}' in api.metrics()
    assert not any(run["outcome"] == "enqueued" for run in c.get("/v1/schedules/tick").json()["runs"])
    r.delete("rq:queue:default")  # room again: the refused tick is fired (late, within the grace)
    runs = wait_until(lambda: [x for x in c.get("/v1/schedules/tick").json()["runs"] if x["outcome"] == "enqueued"],
                      timeout=10, message="the tick fired once there is room")
    assert runs


def test_declared_schedules_are_upserted_and_refuse_changes(start_api, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text("- name: report\n  type: counted\n  cron: '0 6 * * 1'\n  timezone: Europe/Berlin\n"
                    "- name: other-report\n  tenant: other\n  type: counted\n  interval_seconds: 60\n")
    api = start_api(JOBENGINE_SCHEDULES_FILE=str(path), JOBENGINE_SCHEDULER="false")
    body = api.client.get("/v1/schedules/report").json()
    assert body["source"] == "declared" and body["version"] == 1
    assert api.client.patch("/v1/schedules/report", json={"cron": "0 7 * * 1"}).status_code == 409
    assert api.client.delete("/v1/schedules/report").status_code == 409
    assert api.client.post("/v1/schedules/report:pause").json()["state"] == "paused"
    api.proc.stop()
    # unchanged: kept as it was (paused, version 1); the one gone from the file is deleted
    path.write_text(json.dumps([{"name": "report", "type": "counted", "cron": "0 6 * * 1",
                                 "timezone": "Europe/Berlin"}]))
    api = start_api(JOBENGINE_SCHEDULES_FILE=str(path), JOBENGINE_SCHEDULER="false")
    body = api.client.get("/v1/schedules/report").json()
    assert body["version"] == 2 and body["state"] == "paused"  # (version 2: the pause)
    api.proc.stop()
    path.write_text(json.dumps([{"name": "report", "type": "counted", "cron": "0 8 * * 1",
                                 "timezone": "Europe/Berlin"}]))
    api = start_api(JOBENGINE_SCHEDULES_FILE=str(path), JOBENGINE_SCHEDULER="false")
    body = api.client.get("/v1/schedules/report").json()
    assert body["version"] == 3 and body["cron"] == "0 8 * * 1"
    assert body["state"] == "active"  # a changed file applies whole: its paused (false) too


def test_redis_outage_is_a_503_and_the_api_and_its_loop_recover(start_api, redis_server: EmbeddedRedis) -> None:
    api = start_api(JOBENGINE_SCHEDULER_INTERVAL_SECONDS="0.2")
    assert api.client.post("/v1/schedules", json=EVERY_SECOND).status_code == 201
    redis_server.stop()
    try:
        for method, path in [("GET", "/v1/schedules"), ("GET", "/v1/schedules/tick"),
                             ("POST", "/v1/schedules/tick:pause")]:
            resp = api.client.request(method, path)
            assert resp.status_code == 503 and resp.headers["retry-after"], (method, path, resp.text)
        resp = api.client.post("/v1/schedules", json={**EVERY_SECOND, "name": "other"})
        assert resp.status_code == 503, resp.text
    finally:
        redis_server.start()
    assert api.proc.alive()
    fired = wait_until(lambda: api.client.get("/v1/schedules/tick").status_code == 200 and
                       api.client.get("/v1/schedules/tick").json()["fires"] >= 2, timeout=15, interval=0.2,
                       message="the loop firing again after the outage")
    assert fired


def test_a_tenant_at_its_schedule_limit_gets_429(start_api, keys_file: Path) -> None:
    api = start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_SCHEDULER="false",
                    JOBENGINE_MAX_SCHEDULES_PER_TENANT="2")
    for i in range(2):
        assert api.client.post("/v1/schedules", json={**EVERY_SECOND, "name": f"s{i}"}).status_code == 201
    resp = api.client.post("/v1/schedules", json={**EVERY_SECOND, "name": "s2"})
    assert resp.status_code == 429 and resp.headers["retry-after"], resp.text
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert api.client.post("/v1/schedules", json=EVERY_SECOND, headers=other).status_code == 201
    assert api.client.delete("/v1/schedules/s0").status_code == 204
    assert api.client.post("/v1/schedules", json={**EVERY_SECOND, "name": "s2"}).status_code == 201
