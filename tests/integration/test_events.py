"""Job events over SSE against the real API and worker processes: one job from queued to finished with its
progress, the tenant's stream with filters and heartbeats, resume with Last-Event-ID, tenant isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_KEY, key_entry, write_key_file
from tests.support.sse import SseReader, event_ids
from tests.support.wait import wait_until

ACME = "acme-key.acme-secret-0123456789abcdef0123456789abcdef"
GLOBEX = "globex-key.globex-secret-0123456789abcdef0123456789ab"


@pytest.fixture
def tenants_api(start_api, tmp_path: Path):  # type: ignore[no-untyped-def]
    keys_file = write_key_file(tmp_path / "tenant-keys.json", [
        key_entry(TEST_KEY), key_entry(ACME, "acme", ("submit", "read")),
        key_entry(GLOBEX, "globex", ("submit", "read"))])
    return start_api(JOBENGINE_API_KEYS_FILE=str(keys_file), JOBENGINE_EVENTS_HEARTBEAT_SECONDS="0.3")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submit(api, body: dict, key: str = TEST_KEY) -> str:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json=body, headers=auth(key))
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]  # type: ignore[no-any-return]


def test_one_job_from_queued_to_finished_with_progress(api, start_worker) -> None:
    listening = SseReader(f"{api.base_url}/v1/events", auth(TEST_KEY)).start()  # the tenant's events are written
    job = submit(api, {"type": "sleep", "payload": {"seconds": 1.2, "steps": 3}})  # (reports 0.4 s apart: none
    # is dropped by the worker's 0.2 s rate limit)
    reader = SseReader(f"{api.base_url}/v1/jobs/{job}/events", auth(TEST_KEY)).start()
    assert reader.status == 200
    wait_until(lambda: reader.types() == ["job.queued"], timeout=10, message="the job's queued event")
    start_worker()
    assert reader.ended.wait(30), reader.types()  # the stream closes once the job ended
    assert reader.types() == ["job.queued", "job.started", "job.progress", "job.progress", "job.progress",
                              "job.finished"]
    events = reader.events
    assert all(e.event == e.data["type"] and e.id == e.data["id"] for e in events)
    assert [e.data["progress"]["fraction"] for e in events if e.event == "job.progress"] == pytest.approx(
        [1 / 3, 2 / 3, 1.0])
    first = events[0].data
    assert {k: first[k] for k in ("job_id", "job_type", "queue", "status")} == {
        "job_id": job, "job_type": "sleep", "queue": "default", "status": "queued"}
    assert first["at"].endswith("Z") and events[-1].data["status"] == "finished"

    # an ended job: its events again from the stream, then the end; a resume sends only what followed
    again = SseReader(f"{api.base_url}/v1/jobs/{job}/events", auth(TEST_KEY)).start()
    assert again.ended.wait(10) and again.types() == reader.types()
    resumed = SseReader(f"{api.base_url}/v1/jobs/{job}/events", {**auth(TEST_KEY), "Last-Event-ID": events[2].id}
                        ).start()
    assert resumed.ended.wait(10) and [e.id for e in resumed.events] == [e.id for e in events[3:]]

    listening.close()
    assert api.client.get(f"/v1/jobs/{'0' * 32}/events").status_code == 404
    bad = api.client.get(f"/v1/jobs/{job}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Last-Event-ID"


def test_tenant_stream_filters_resume_and_isolation(tenants_api, start_worker, r: redis.Redis) -> None:
    api = tenants_api
    base = f"{api.base_url}/v1/events"
    everything = SseReader(base, auth(ACME)).start()
    finished_low = SseReader(f"{base}?type=job.finished&queue=low", auth(ACME)).start()
    globex = SseReader(base, auth(GLOBEX)).start()
    assert api.client.get(f"{base}?type=job.done", headers=auth(ACME)).json()["errors"][0]["field"] == "type"

    start_worker(JOBENGINE_QUEUES="default,low")
    first = [submit(api, {"type": "echo", "payload": {}, "queue": q}, ACME) for q in ("default", "low", "low")]
    wait_until(lambda: everything.types().count("job.finished") == 3, timeout=20, message="3 finished")
    everything.close()  # a client goes away after these; more happens while it is gone
    seen = list(everything.events)
    more = [submit(api, {"type": "echo", "payload": {"fail": True}, "queue": "default"}, ACME),
            submit(api, {"type": "echo", "payload": {}, "queue": "low"}, ACME)]
    own = submit(api, {"type": "echo", "payload": {}}, GLOBEX)

    # resumed from the last event it saw: every later event, once, in order
    resumed = SseReader(base, {**auth(ACME), "Last-Event-ID": seen[-1].id}).start()
    wait_until(lambda: {e.data["job_id"] for e in resumed.events if e.data["type"] in ("job.finished", "job.failed")}
               >= set(more), timeout=20, message="the later jobs' ends")
    all_ids = event_ids(r, "jobengine:events:acme")
    assert [e.id for e in seen] + [e.id for e in resumed.events] == all_ids  # nothing lost, nothing twice
    assert {e.data["job_id"] for e in seen + resumed.events} == set(first + more)

    wait_until(lambda: len(finished_low.events) == 3, timeout=10, message="the filtered stream's 3 events")
    assert [(e.data["type"], e.data["queue"]) for e in finished_low.events] == [("job.finished", "low")] * 3
    assert {e.data["job_id"] for e in finished_low.events} == {first[1], first[2], more[1]}

    wait_until(lambda: "job.finished" in globex.types(), timeout=10, message="globex's own job")
    assert {e.data["job_id"] for e in globex.events} == {own}  # nothing of acme's
    assert globex.comments > 0  # heartbeats (every 0.3 s here)
    for reader in (finished_low, globex, resumed):
        reader.close()


def finished(api, job: str, key: str) -> bool:  # type: ignore[no-untyped-def]
    return api.client.get(f"/v1/jobs/{job}", headers=auth(key)).json()["status"] == "finished"  # type: ignore[no-any-return]


def test_nobody_listening_costs_no_event_writes_and_a_job_stream_starts_from_its_state(
        tenants_api, start_worker, r: redis.Redis) -> None:
    api = tenants_api
    start_worker()
    done = submit(api, {"type": "echo", "payload": {}}, ACME)
    wait_until(lambda: finished(api, done, ACME), timeout=20, message="the job to finish")
    running = submit(api, {"type": "sleep", "payload": {"seconds": 1.5, "steps": 3}}, ACME)
    wait_until(lambda: api.client.get(f"/v1/jobs/{running}", headers=auth(ACME)).json()["status"] == "started",
               timeout=20, message="the job to start")
    assert not r.exists("jobengine:events:acme")  # no stream, no webhook: its events were not written

    # a job running when its stream opens: its state first (no id: not in the stream), then each change
    reader = SseReader(f"{api.base_url}/v1/jobs/{running}/events", auth(ACME)).start()
    assert reader.ended.wait(20), reader.types()
    types = reader.types()
    assert types[0] == "job.started" and not reader.events[0].id and types[-1] == "job.finished"
    assert all(e.id for e in reader.events[1:])  # the rest came from the stream, written since it opened

    # a job that ended unheard: its state, the one event, and the stream ends
    ended = SseReader(f"{api.base_url}/v1/jobs/{done}/events", auth(ACME)).start()
    assert ended.ended.wait(10) and ended.types() == ["job.finished"] and not ended.events[0].id
    assert r.ttl("jobengine:listened:acme") > 0  # written for a while yet: a client that reconnects resumes


def test_a_dependent_job_is_deferred_then_queued(api, start_worker) -> None:
    stream = SseReader(f"{api.base_url}/v1/events", auth(TEST_KEY)).start()
    first = submit(api, {"type": "sleep", "payload": {"seconds": 0.3}})
    then = submit(api, {"type": "echo", "payload": {}, "depends_on": [first]})
    wait_until(lambda: stream.types(then) == ["job.deferred"], timeout=10, message="the dependent's deferred event")
    start_worker()
    wait_until(lambda: "job.finished" in stream.types(then), timeout=20, message="the dependent to finish")
    assert stream.types(then) == ["job.deferred", "job.queued", "job.started", "job.finished"]
    order = [(e.data["job_id"], e.data["type"]) for e in stream.events]
    assert order.index((first, "job.finished")) < order.index((then, "job.queued"))  # its cause comes first
    stream.close()


def test_a_retried_job_is_followed_past_its_earlier_failure_and_an_ended_stream_is_not_reopened(
        api, start_worker) -> None:
    listening = SseReader(f"{api.base_url}/v1/events", auth(TEST_KEY)).start()
    start_worker()
    job = submit(api, {"type": "echo", "payload": {"fail": True}})
    wait_until(lambda: "job.failed" in listening.types(job), timeout=20, message="the job to fail")
    api.client.post("/v1/queues/default:pause")  # so the retried job waits while its stream opens
    assert api.client.post(f"/v1/jobs/{job}/retry").status_code == 202
    reader = SseReader(f"{api.base_url}/v1/jobs/{job}/events", auth(TEST_KEY)).start()
    wait_until(lambda: reader.types()[-1:] == ["job.queued"], timeout=10, message="its history up to the retry")
    assert not reader.ended.is_set()  # the earlier failure did not end it
    api.client.post("/v1/queues/default:resume")
    assert reader.ended.wait(20), reader.types()
    assert reader.types()[-2:] == ["job.started", "job.failed"] and reader.types().count("job.failed") == 2

    # a client that saw the end and reconnects (as EventSource does) is told the stream is over
    again = api.client.get(f"/v1/jobs/{job}/events", headers={**auth(TEST_KEY), "Last-Event-ID": reader.events[-1].id})
    assert again.status_code == 204
    listening.close()
