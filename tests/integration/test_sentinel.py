"""Redis behind Sentinel: the API and the worker find the primary through the sentinels, and keep going
after a failover. Real redis-servers on 127.0.0.1: a primary, its replica and one sentinel (quorum 1)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobengine.redis_conn import EmbeddedRedis, free_port, redis_server_binary
from tests.conftest import wait_for

from .test_api_submit import PRIMES

PRIMARY_NAME = "jobs"
SENTINEL_USER, SENTINEL_PASSWORD = "jobengine-sentinel", "sentinel-pw"  # the ACL user of the "ACL user" cases


class SentinelGroup:
    def __init__(self, directory: Path, acl_user: bool = False) -> None:
        self.dir = directory
        self.acl_user = acl_user  # the sentinel lets in only SENTINEL_USER (its default user is off)
        # (no 5 s wait for more replicas before the first sync, Redis's default)
        self.primary = EmbeddedRedis(directory=str(directory / "primary"), extra_args=["--repl-diskless-sync-delay", "0"])
        self.replica: EmbeddedRedis | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        login = {"username": SENTINEL_USER, "password": SENTINEL_PASSWORD} if acl_user else {}
        self.sentinel = redis.Redis(port=self.port, socket_timeout=2, decode_responses=True, **login)

    def start(self) -> None:
        self.primary.start()
        self.replica = EmbeddedRedis(directory=str(self.dir / "replica"),
                                     extra_args=["--replicaof", "127.0.0.1", str(self.primary.port),
                                                 "--repl-diskless-sync-delay", "0"]).start()
        conf = self.dir / "sentinel.conf"  # Sentinel rewrites its file: it must be its own and writable
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {PRIMARY_NAME} 127.0.0.1 {self.primary.port} 1\n"
                        f"sentinel down-after-milliseconds {PRIMARY_NAME} 1000\n"
                        f"sentinel failover-timeout {PRIMARY_NAME} 10000\n"
                        + (f"user default off\nuser {SENTINEL_USER} on >{SENTINEL_PASSWORD} ~* &* +@all\n"
                           if self.acl_user else ""))
        self.proc = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        with redis.Redis(port=self.replica.port) as replica:
            wait_for(lambda: replica.info("replication")["master_link_status"] == "up", 15,
                     message="the replica to sync")
        wait_for(self.knows_the_replica, 15, message="the sentinel to see the replica")

    @property
    def url(self) -> str:
        login = f"?sentinel_username={SENTINEL_USER}&sentinel_password={SENTINEL_PASSWORD}" if self.acl_user else ""
        return f"redis+sentinel://127.0.0.1:{self.port}/{PRIMARY_NAME}/0{login}"

    def primary_port(self) -> int:
        return int(self.sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", PRIMARY_NAME)[1])

    def knows_the_replica(self) -> bool:
        try:
            return len(self.sentinel.execute_command("SENTINEL", "REPLICAS", PRIMARY_NAME)) == 1
        except (redis.ConnectionError, redis.AuthenticationError):  # (not up yet)
            return False

    def stop(self) -> None:
        self.sentinel.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.replica is not None:
            self.replica.stop()
        self.primary.stop()


@pytest.fixture
def group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentinelGroup]:
    g = SentinelGroup(tmp_path, acl_user=getattr(request, "param", "") == "ACL user")
    try:
        g.start()
        yield g
    finally:
        g.stop()


@pytest.fixture
def redis_url(group: SentinelGroup) -> str:
    """The services of this module (start_api, start_worker) connect with the Sentinel URL."""
    return group.url


@pytest.mark.parametrize("group", ["default user", "ACL user"], indirect=True)
def test_api_and_worker_find_the_primary_through_sentinel(group, api, worker) -> None:  # type: ignore[no-untyped-def]
    resp = api.client.post("/v1/jobs", json=PRIMES)
    assert resp.status_code == 202, resp.text
    got = api.client.get(resp.headers["location"], params={"wait": 10}).json()
    assert got["status"] == "finished" and got["result"] == {"primes": [11, 13, 17], "count": 3}
    with redis.Redis(port=group.primary.port) as primary:
        assert primary.hget(f"rq:job:{got['id']}", "status") == b"finished"  # written on the primary


@pytest.mark.parametrize("how", ["primary killed", "primary demoted"])
def test_jobs_keep_flowing_after_a_failover(group, api, worker, how: str) -> None:  # type: ignore[no-untyped-def]
    before = api.client.post("/v1/jobs", json=PRIMES).json()["id"]
    assert api.client.get(f"/v1/jobs/{before}", params={"wait": 10}).json()["status"] == "finished"
    with redis.Redis(port=group.primary.port) as primary:
        assert primary.wait(1, 5000) == 1  # replicated: async replication could lose it in the failover

    if how == "primary killed":  # SIGKILL: the sentinel sees it down after 1 s and promotes the replica
        group.primary.stop(hard=True)
    else:  # a planned switch: the old primary lives on as a replica, answering writes with READONLY and the
        #    worker's blocked BLPOP with UNBLOCKED
        group.sentinel.execute_command("SENTINEL", "FAILOVER", PRIMARY_NAME)
    wait_for(lambda: group.primary_port() == group.replica.port, 30, message="the sentinel to fail over")
    if how == "primary demoted":  # until then the old primary still takes writes, and loses them as it turns
        #                           replica (see docs/guarantees.md): the submit below must come after
        with redis.Redis(port=group.primary.port) as old:
            wait_for(lambda: old.info("replication")["role"] == "slave", 30, message="the old primary's demotion")

    deadline = time.monotonic() + 30  # during the switch the API answers 503 + Retry-After: a client retries
    while (resp := api.client.post("/v1/jobs", json=PRIMES)).status_code == 503 and time.monotonic() < deadline:
        assert resp.headers.get("retry-after")
        time.sleep(0.2)
    assert resp.status_code == 202, resp.text
    after = api.client.get(resp.headers["location"], params={"wait": 20}).json()
    assert after["status"] == "finished" and after["result"]["count"] == 3
    assert api.client.get(f"/v1/jobs/{before}").json()["status"] == "finished"  # kept by the new primary
    with redis.Redis(port=group.replica.port) as promoted:
        assert promoted.hget(f"rq:job:{after['id']}", "status") == b"finished"

    # a cancel still reaches the job the worker runs (command channel or heartbeat, on the new primary)
    slow = api.client.post("/v1/jobs", json={"type": "sleep", "payload": {"seconds": 30}}).json()["id"]
    wait_for(lambda: api.client.get(f"/v1/jobs/{slow}").json()["status"] == "started", message="the job to start")
    assert api.client.delete(f"/v1/jobs/{slow}").status_code == 202  # accepted: the worker stops it
    wait_for(lambda: api.client.get(f"/v1/jobs/{slow}").json()["status"] == "canceled", 5, message="the cancel")
    assert worker.alive() and api.proc.alive()
