"""Redis under pressure (issue 14): connection bounds, pool exhaustion, an interrupted batch, scripts run
twice, and jobs written without a tenant. A real redis-server and, where the answer matters, the real API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from jobengine.catalog import discover
from jobengine.producer import JobSpec, Producer
from jobengine.redis_conn import EmbeddedRedis, async_client, free_port, sync_client
from jobengine.settings import Settings
from jobengine_api.models import Submissions
from jobengine_api.store import JobStore, prepare_job
from tests.conftest import wait_for

ECHO = {"type": "echo", "payload": {"message": "hi"}}


async def _many(base_url: str, key: str | None, requests: list[tuple[str, str, dict | None]]) -> list[httpx.Response]:
    """Send every request at once, each on its own connection."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        return await asyncio.gather(*(client.request(method, path, json=body) for method, path, body in requests))


def send_all(api, requests: list[tuple[str, str, dict | None]]) -> list[httpx.Response]:  # type: ignore[no-untyped-def]
    return asyncio.run(_many(api.base_url, api.key, requests))


def api_connections(r: redis.Redis) -> int:
    """Clients connected to Redis other than this test's own connection."""
    return sum(1 for c in r.client_list() if c["id"] != str(r.client_id()))


# --- 1. the fast lane's connections are bounded ---

def test_concurrent_reads_keep_the_api_within_its_connections(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_REDIS_MAX_CONNECTIONS="16")
    job_id = api.client.post("/v1/jobs", json=ECHO).json()["id"]
    answers = send_all(api, [("GET", f"/v1/jobs/{job_id}", None)] * 300)
    assert [a.status_code for a in answers] == [200] * 300
    # submit lane 16 + read lane 8 + the pool (16: pub/sub, the memory guard, the key refresher) at most
    assert api_connections(r) <= 16 + 8 + 16


# --- 2. an exhausted pool waits, then names itself; long-polls do not starve submits ---

def pause_redis(r: redis.Redis, milliseconds: int) -> None:
    """Every client's commands wait until the pause ends: each API request then holds its connection."""
    r.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")


def test_more_concurrent_lists_than_connections_all_succeed(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_REDIS_MAX_CONNECTIONS="16", JOBENGINE_REDIS_POOL_TIMEOUT_SECONDS="30")
    api.client.post("/v1/jobs", json=ECHO)
    pause_redis(r, 3000)  # the requests pile up: 400 want a connection at once (the old pool failed past 256)
    answers = send_all(api, [("GET", "/v1/jobs", None)] * 400)
    assert [a.status_code for a in answers] == [200] * 400, {a.text for a in answers if a.status_code != 200}
    assert all(len(a.json()["items"]) == 1 for a in answers)


def test_a_request_that_finds_no_free_connection_gets_a_503_naming_the_pool(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_REDIS_MAX_CONNECTIONS="2", JOBENGINE_REDIS_POOL_TIMEOUT_SECONDS="0.2")
    api.client.get("/v1/jobs")  # the pool's connections exist (one more is the pub/sub's, taken at the first wait)
    pause_redis(r, 3000)
    answers = send_all(api, [("GET", "/v1/jobs", None)] * 20)
    refused = [a for a in answers if a.status_code == 503]
    assert refused and {a.status_code for a in answers} <= {200, 503}
    for answer in refused:
        body = answer.json()
        assert body["type"] == "urn:jobengine:problem:redis-pool-exhausted", body
        assert "pool" in body["detail"] and "unreachable" not in body["detail"]
        assert answer.headers["retry-after"] == "1"


def test_submits_are_answered_while_many_long_polls_wait(start_api, r: redis.Redis) -> None:
    api = start_api(JOBENGINE_REDIS_MAX_CONNECTIONS="16")
    batch = api.client.post("/v1/jobs:batch", json={"jobs": [ECHO] * 200}).json()  # no worker: they stay queued
    waiting = [item["id"] for item in batch["results"]]
    r.config_resetstat()

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {api.key}"}
        async with httpx.AsyncClient(base_url=api.base_url, headers=headers, limits=limits, timeout=60) as client:
            polls = [asyncio.ensure_future(client.get(f"/v1/jobs/{job_id}", params={"wait": 30}))
                     for job_id in waiting]
            loop = asyncio.get_running_loop()
            # every long-poll has subscribed and read its job once: all are waiting now
            await loop.run_in_executor(None, lambda: wait_for(
                lambda: r.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0) >= len(waiting),
                timeout=30, message="the long-polls to wait"))
            submits = await asyncio.gather(*(client.post("/v1/jobs", json=ECHO) for _ in range(50)))
            assert not any(poll.done() for poll in polls)  # answered while every long-poll still waited
            for job_id in waiting:  # end them: each long-poll wakes on its job's end
                assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 200
            return submits, list(await asyncio.gather(*polls))

    submits, polls = asyncio.run(scenario())
    assert [s.status_code for s in submits] == [202] * 50
    assert [p.json()["status"] for p in polls] == ["canceled"] * len(waiting)


# --- 3. a batch interrupted by Redis is written whole or not at all, and answered so ---

@pytest.fixture
def low_maxmemory(r: redis.Redis) -> Iterator[None]:
    yield
    r.config_set("maxmemory", 0)


def test_a_batch_that_runs_into_maxmemory_answers_what_redis_holds(start_api, r: redis.Redis, low_maxmemory) -> None:
    api = start_api(JOBENGINE_REDIS_MEMORY_LIMIT_RATIO="0")  # no guard: Redis itself refuses mid-batch
    api.client.post("/v1/jobs", json=ECHO)  # scripts loaded, the API's own keys written
    r.delete("rq:queue:default", "jobengine:index:default", *r.keys("rq:job:*"))
    # room for a third of the batch: the old pipeline wrote about that many, then answered "nothing written"
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 150_000)
    big = {"type": "echo", "payload": {"message": "x" * 2000}}
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [big] * 200})
    written = r.keys("rq:job:*")
    if resp.status_code == 503:
        assert resp.json()["type"] == "urn:jobengine:problem:redis-out-of-memory"
        assert written == [] and r.llen("rq:queue:default") == 0 and r.xlen("jobengine:index:default") == 0
    else:  # the whole batch fitted
        assert resp.status_code == 202, resp.text
        assert len(written) == r.llen("rq:queue:default") == 200
    r.config_set("maxmemory", 0)
    assert api.client.post("/v1/jobs:batch", json={"jobs": [big] * 3}).status_code == 202


# --- 4. a script that runs twice (redis-py re-sent it) answers as the first run ---

def _store_settings(redis_url: str, **extra: object) -> Settings:
    return Settings(redis_url=redis_url, job_type_modules=["tests.support.jobs"], **extra)  # type: ignore[arg-type]


def test_an_enqueue_run_twice_writes_once(redis_url: str, r: redis.Redis) -> None:
    settings = _store_settings(redis_url, tenant_max_backlog=10, rate_limit_per_second=1, rate_limit_burst=5)
    catalog = discover(settings.job_type_modules)
    sub = Submissions.build(catalog).single.validate_python(ECHO)
    job = prepare_job(sub, catalog["echo"], settings, tenant="acme", key_id="k1")

    async def twice() -> list[object]:
        store = JobStore(async_client(settings), settings)
        try:  # the same EVALSHA twice, as redis-py's retry or a re-sent pipeline does
            return [await store.enqueue(job), await store.enqueue(job)]
        finally:
            await store.fast.aclose()
            await store.redis.aclose()

    first, second = asyncio.run(twice())
    assert first == second and not second.refused and not second.replayed  # type: ignore[attr-defined]
    assert r.lrange("rq:queue:default", 0, -1) == [job.id.encode()]
    assert r.xlen("jobengine:index:acme") == 1
    assert r.get("jobengine:backlog:acme") == b"1"  # counted once against the quota
    assert float(r.hget("jobengine:ratelimit:k1", "tokens")) >= 3.9  # one token spent, not two


def test_cancel_and_retry_run_twice_answer_the_same(redis_url: str, r: redis.Redis) -> None:
    settings = _store_settings(redis_url, tenant_max_backlog=10)
    catalog = discover(settings.job_type_modules)
    sub = Submissions.build(catalog).single.validate_python(ECHO)
    job = prepare_job(sub, catalog["echo"], settings, tenant="acme")

    async def scenario() -> list[tuple[str, str]]:
        store = JobStore(async_client(settings), settings)
        try:
            await store.enqueue(job)
            answers = [await store.cancel(job.id, "acme", token="t1"), await store.cancel(job.id, "acme", token="t1")]
            answers.append(await store.cancel(job.id, "acme"))  # a new call: the job has ended
            answers += [await store.requeue(job.id, "acme", token="t2"),
                        await store.requeue(job.id, "acme", token="t2")]
            answers.append(await store.requeue(job.id, "acme"))  # a new call: queued already
            return answers
        finally:
            await store.aclose()
            await store.redis.aclose()

    answers = asyncio.run(scenario())
    assert answers == [("canceled", "canceled"), ("canceled", "canceled"), ("terminal", "canceled"),
                       ("queued", "queued"), ("queued", "queued"), ("not_failed", "queued")]
    assert r.lrange("rq:queue:default", 0, -1) == [job.id.encode()]  # requeued once
    assert r.get("jobengine:backlog:acme") == b"1"  # uncounted once by the cancel, counted once by the retry


# --- 5. jobs written without a tenant belong to none ---

def test_a_default_tenant_key_cannot_reach_jobs_written_without_a_tenant(start_api, r: redis.Redis) -> None:
    api = start_api()  # its key's tenant is "default"
    catalog = discover(["tests.support.jobs"])
    tenantless = Producer(r, catalog=catalog).submit("echo", {"message": "no tenant"})
    assert r.hget(f"rq:job:{tenantless}", "jobengine_tenant") is None
    owned = Producer(r, catalog=catalog, tenant="default").submit("echo", {"message": "for default"})
    c = api.client
    assert c.get(f"/v1/jobs/{tenantless}").status_code == 404
    assert c.delete(f"/v1/jobs/{tenantless}").status_code == 404
    assert r.hget(f"rq:job:{tenantless}", "status") == b"queued"  # not canceled
    r.hset(f"rq:job:{tenantless}", "status", "failed")
    assert c.post(f"/v1/jobs/{tenantless}/retry").status_code == 404
    assert [item["id"] for item in c.get("/v1/jobs").json()["items"]] == [owned]
    assert c.get(f"/v1/jobs/{owned}").json()["payload"] == {"message": "for default", "fail": False,
                                                             "fail_attempts": 0}


def test_without_authentication_the_one_caller_sees_every_job(start_api, r: redis.Redis) -> None:
    api = start_api(key=None, JOBENGINE_ENV="development", JOBENGINE_AUTH="auto")
    catalog = discover(["tests.support.jobs"])
    tenantless = Producer(r, catalog=catalog).submit("echo", {"message": "no tenant"})
    acme = Producer(r, catalog=catalog, tenant="acme").submit("echo", {"message": "acme"})
    assert api.client.get(f"/v1/jobs/{tenantless}").status_code == 200
    assert {item["id"] for item in api.client.get("/v1/jobs").json()["items"]} == {tenantless, acme}
    assert api.client.delete(f"/v1/jobs/{acme}").json()["status"] == "canceled"


def test_a_batch_after_redis_forgot_the_scripts_is_written_once(api, r: redis.Redis) -> None:
    assert api.client.post("/v1/jobs:batch", json={"jobs": [ECHO]}).status_code == 202
    r.script_flush()  # as after a restart: the transaction's EVALSHAs all answer NOSCRIPT and write nothing
    resp = api.client.post("/v1/jobs:batch", json={"jobs": [ECHO] * 3})
    assert resp.status_code == 202, resp.text
    assert r.llen("rq:queue:default") == 4 and r.xlen("jobengine:index:default") == 4


def test_a_batch_whose_connection_is_cut_mid_transaction_is_written_once(api, r: redis.Redis) -> None:
    assert api.client.post("/v1/jobs", json=ECHO).status_code == 202  # scripts loaded
    r.delete("rq:queue:default", "jobengine:index:default", *r.keys("rq:job:*"))
    r.execute_command("CLIENT", "PAUSE", 20_000, "WRITE")  # the batch's first script call waits inside MULTI
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(api.client.post, "/v1/jobs:batch", json={"jobs": [ECHO] * 5})
            in_multi = wait_for(lambda: [c for c in r.client_list() if c.get("multi", "-1") != "-1"],
                                message="the batch's transaction")
            r.client_kill_filter(_id=in_multi[0]["id"])  # Redis discards the transaction; the API sends it again
            r.execute_command("CLIENT", "UNPAUSE")
            resp = answer.result(timeout=30)
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
    assert resp.status_code == 202, resp.text
    accepted = [item["id"].encode() for item in resp.json()["results"]]
    assert r.lrange("rq:queue:default", 0, -1) == accepted and len(r.keys("rq:job:*")) == 5


def test_the_fast_lane_bounds_its_connections_and_the_wait_for_one(redis_url: str, r: redis.Redis) -> None:
    from jobengine_api.fastlane import FastLane, pack
    from jobengine.redis_conn import PoolExhausted

    async def scenario() -> tuple[list[object], int]:
        client = async_client(_store_settings(redis_url))
        lane = FastLane(client, timeout=30, max_connections=2, wait_timeout=0.2)
        try:
            r.execute_command("CLIENT", "PAUSE", 20_000, "WRITE")  # the two connections' INCRs hang
            held = []
            for n in (1, 2):  # one at a time: commands queued in the same tick share one write
                held.append(asyncio.ensure_future(lane.execute_many([pack(["INCR", "held"])])))
                while lane.open_connections < n:
                    await asyncio.sleep(0)
            late = [asyncio.ensure_future(lane.execute(pack(["INCR", "late"]))) for _ in range(3)]
            outcomes: list[object] = list(await asyncio.gather(*late, return_exceptions=True))
            opened = lane.open_connections
            r.execute_command("CLIENT", "UNPAUSE")
            outcomes += await asyncio.gather(*held)
            return outcomes, opened
        finally:
            r.execute_command("CLIENT", "UNPAUSE")
            await lane.aclose()
            await client.aclose()

    outcomes, opened = asyncio.run(scenario())
    assert opened == 2
    assert [type(o) for o in outcomes[:3]] == [PoolExhausted] * 3 and "busy" in str(outcomes[0])
    assert sorted(outcomes[3:]) == [[1], [2]]  # type: ignore[type-var]
    assert r.get("late") is None  # a command that waited out its time was never sent


def test_a_batch_on_a_demoted_primary_gets_a_503(start_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    own = EmbeddedRedis(directory=str(tmp_path / "own")).start()
    other = EmbeddedRedis(directory=str(tmp_path / "other")).start()
    try:
        api = start_api(JOBENGINE_REDIS_URL=own.url)
        assert api.client.post("/v1/jobs:batch", json={"jobs": [ECHO] * 2}).status_code == 202
        with redis.Redis(port=own.port) as admin:
            admin.replicaof("127.0.0.1", other.port)  # READONLY inside EXEC's replies: a hang-up, not a 500
            resp = api.client.post("/v1/jobs:batch", json={"jobs": [ECHO] * 2})
            assert resp.status_code == 503, resp.text
            admin.replicaof("no", "one")
        assert api.client.post("/v1/jobs:batch", json={"jobs": [ECHO] * 2}).status_code == 202
    finally:
        own.stop()
        other.stop()


class ReplyDropper:
    """A TCP proxy to Redis that, once armed with a marker, forwards the next client write holding it, waits
    for Redis's reply and then cuts both connections instead of relaying it: the command ran, its reply is
    lost, and redis-py re-sends it on a new connection (its retry), as after a timeout or a failover."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.marker: bytes | None = None
        self.dropped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReplyDropper:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def arm(self, *marker: bytes) -> None:
        self.dropped.clear()
        self.marker = b"".join(marker)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def downstream() -> None:
            while data := await up_r.read(65536):
                client_w.write(data)
                await client_w.drain()

        relay = asyncio.ensure_future(downstream())
        try:
            while data := await client_r.read(65536):
                if self.marker is not None and all(part in data for part in self.marker.split(b"\0")):
                    self.marker = None
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)
                    up_w.write(data)
                    await up_r.read(65536)  # Redis ran it and answered: the answer goes nowhere
                    self.dropped.set()
                    return
                up_w.write(data)
                await up_w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            relay.cancel()
            for writer in (client_w, up_w):
                writer.close()


def test_cancel_and_retry_whose_reply_is_lost_are_answered_once(start_api, redis_server, r: redis.Redis) -> None:
    with ReplyDropper(redis_server.port) as proxy:
        api = start_api(JOBENGINE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
        job_id = api.client.post("/v1/jobs", json=ECHO).json()["id"]
        proxy.arm(b"EVALSHA\0", job_id.encode())
        resp = api.client.delete(f"/v1/jobs/{job_id}")  # ran twice in Redis: the retry's run answered
        assert proxy.dropped.is_set()
        assert resp.status_code == 200 and resp.json()["status"] == "canceled", resp.text
        proxy.arm(b"EVALSHA\0", job_id.encode())
        resp = api.client.post(f"/v1/jobs/{job_id}/retry")
        assert proxy.dropped.is_set()
        assert resp.status_code == 202, resp.text
    assert r.lrange("rq:queue:default", 0, -1) == [job_id.encode()]  # queued once


def test_a_producer_pipeline_whose_reply_is_lost_writes_each_job_once(redis_server, r: redis.Redis) -> None:
    with ReplyDropper(redis_server.port) as proxy:
        client = sync_client(Settings(redis_url=f"redis://127.0.0.1:{proxy.port}/0"))
        try:
            producer = Producer(client, catalog=discover(["tests.support.jobs"]))
            producer.submit("echo", {"message": "warm"})  # scripts loaded
            proxy.arm(b"EVALSHA\0", b"second")
            ids = producer.submit_many([JobSpec("echo", {"message": m}) for m in ("first", "second", "third")])
            assert proxy.dropped.is_set()  # the pipeline ran, its replies were lost, redis-py sent it again
        finally:
            client.close()
    assert r.lrange("rq:queue:default", 1, -1) == [i.encode() for i in ids]


def test_submits_whose_reply_is_lost_are_answered_with_what_was_written(start_api, redis_server,
                                                                         r: redis.Redis) -> None:
    with ReplyDropper(redis_server.port) as proxy:
        api = start_api(JOBENGINE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
        assert api.client.post("/v1/jobs", json=ECHO).status_code == 202  # scripts loaded
        proxy.arm(b"EVALSHA\0", b"lost-single")
        single = api.client.post("/v1/jobs", json={"type": "echo", "payload": {"message": "lost-single"}})
        assert proxy.dropped.is_set()
        assert single.status_code == 202, single.text  # the old API answered 503 for a job it had written
        proxy.arm(b"EVALSHA\0", b"lost-batch")
        jobs = [{"type": "echo", "payload": {"message": f"lost-batch-{i}"}} for i in range(3)]
        batch = api.client.post("/v1/jobs:batch", json={"jobs": jobs})
        assert proxy.dropped.is_set()
        assert batch.status_code == 202, batch.text
    accepted = [single.json()["id"]] + [item["id"] for item in batch.json()["results"]]
    assert r.lrange("rq:queue:default", 1, -1) == [i.encode() for i in accepted]  # each written once
