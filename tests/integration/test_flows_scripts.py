"""The release of dependents driven through the scripts themselves (no API, no worker): the last two
dependencies completed at the same moment from two connections release the dependent exactly once; every
script that ends a job (complete: finished, failed, crash limit; recover; cancel) releases; a repeated call
releases nothing twice; a job without dependents is left as it was."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from itertools import chain

import redis

from jobengine import keys, scripts
from jobengine.jobdata import build_job_hash, encode_exc_string, new_job_id, utcnow_str
from jobengine.scripts import FlowNodeArgs, OutcomeArgs, Scripts

Q = "default"


def node(job_id: str, deps: list[tuple[str, str]] = (), policy: str = "fail") -> FlowNodeArgs:  # type: ignore[assignment]
    fields = build_job_hash(job_id=job_id, job_type="leaf", function="tests.support.flowjobs.leaf", payload={},
                            queue=Q, timeout=60, result_ttl=600, failure_ttl=600, retry_intervals=[],
                            status="deferred" if deps else "queued",
                            meta={"tenant": "t", **({"dependencies": {d: d for d, _ in deps}} if deps else {})},
                            now=datetime.now(timezone.utc))
    fields[keys.TENANT_FIELD] = "t"
    k = scripts.enqueue_keys(job_id, Q, "", "", "", keys.tenant_index("t"))
    a = scripts.enqueue_args(job_id, Q, chain.from_iterable(fields.items()))
    if deps:
        k[2], a[1] = keys.deferred_registry(Q), scripts.DEFERRED_SCORE
    return FlowNodeArgs(k, a, list(deps), policy)


def write(s: Scripts, nodes: list[FlowNodeArgs], flow_id: str = "") -> scripts.FlowReply:
    fields = ["tenant", "t", "graph", "[]", "ttl", 600] if flow_id else []
    return scripts.parse_flow(s.flow(args=scripts.flow_args(flow_id=flow_id, tenant="t", stamp=utcnow_str(),
                                                             now=time.time(), flow_fields=fields, counter="",
                                                             quota=0, nodes=nodes)))


def claim(s: Scripts, execution: str, limit: int = 10) -> list[str]:
    rows = scripts.parse_claim(s.claim(args=scripts.claim_args(expiry=int(time.time()) + 60, stamp=utcnow_str(),
                                                               worker="w", execution=execution, limit=limit,
                                                               queues=[Q])))
    return [row.id.decode() for row in rows]


def complete(s: Scripts, job_id: str, execution: str, outcome: str = "finished", arg: float = 600) -> list[str]:
    value = "eyJ2YWx1ZSI6IDF9" if outcome == "finished" else encode_exc_string("boom")
    return scripts.parse_statuses(s.complete(args=scripts.complete_args(
        now=time.time(), stamp=utcnow_str(), worker="w",
        outcomes=[OutcomeArgs(job_id, Q, execution, outcome, value, arg)])))


def status(r: redis.Redis, job_id: str) -> str:
    return (r.hget(keys.job(job_id), "status") or b"").decode()


def test_the_last_two_dependencies_ending_together_release_the_dependent_once(r, redis_url) -> None:  # type: ignore[no-untyped-def]
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    runners = [Scripts.register(c) for c in clients]
    s = Scripts.register(r)
    for round_ in range(30):
        r.delete(keys.queue(Q))
        a, b, c = new_job_id(), new_job_id(), new_job_id()
        assert write(s, [node(a)]).code == 1 and write(s, [node(b)]).code == 1
        assert write(s, [node(c, [(a, "success"), (b, "success")])]).statuses == ("deferred",)
        assert sorted(claim(s, f"x{round_}")) == sorted([a, b])
        barrier = threading.Barrier(2)
        answers: list[list[str]] = []

        def run(i: int, job_id: str) -> None:
            barrier.wait()
            answers.append(complete(runners[i], job_id, f"x{round_}"))

        threads = [threading.Thread(target=run, args=(0, a)), threading.Thread(target=run, args=(1, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [["finished"], ["finished"]]
        assert r.lrange(keys.queue(Q), 0, -1) == [c.encode()]  # queued once
        assert status(r, c) == "queued" and r.hget(keys.job(c), "jobengine_pending") == b"0"
        assert r.zscore(keys.deferred_registry(Q), c) is None
        # a repeat of either call (its reply lost) releases nothing again
        assert complete(s, a, f"x{round_}") == ["finished"]
        assert r.lrange(keys.queue(Q), 0, -1) == [c.encode()]
    for client in clients:
        client.close()


def test_every_ending_script_releases(r) -> None:  # type: ignore[no-untyped-def]
    s = Scripts.register(r)
    r.delete(keys.queue(Q))
    ok, failed, crashed, recovered, canceled, waiting = (new_job_id() for _ in range(6))
    for j in (ok, failed, crashed, recovered, canceled, waiting):
        write(s, [node(j)])
    deps = {j: new_job_id() for j in (ok, failed, crashed, recovered, canceled)}
    anyway = new_job_id()
    for j, d in deps.items():
        write(s, [node(d, [(j, "success")], policy="cancel" if j == canceled else "fail")])
    write(s, [node(anyway, [(j, "any") for j in deps] + [(waiting, "success")])])
    assert claim(s, "e1", 4) == [ok, failed, crashed, recovered]
    complete(s, ok, "e1")
    complete(s, failed, "e1", "failed")
    assert complete(s, crashed, "e1", "crash", 0) == ["failed"]  # past the crash limit
    r.zadd(keys.started_registry(Q), {f"{recovered}:e1": 1})  # its claim lapsed: its worker died
    rec = scripts.parse_recover(s.recover(args=scripts.recover_args(
        now=time.time(), stamp=utcnow_str(), max_recoveries=0, limit=100, failed_text="", canceled_text="")))
    assert [x.status for x in rec] == ["failed"]
    assert scripts.parse_change(s.cancel(args=scripts.cancel_args(
        job_id=canceled, now=time.time(), stamp=utcnow_str(), message="", owner="", token="t1")))[0] == "canceled"
    assert status(r, deps[ok]) == "queued"
    assert status(r, deps[failed]) == "failed"
    assert status(r, deps[crashed]) == "failed"
    assert status(r, deps[recovered]) == "failed"
    assert status(r, deps[canceled]) == "canceled"
    # the edges live as long as their job: gone once it is queued, expiring with it once it ended
    assert not r.exists(keys.dependencies(deps[ok]), keys.pending(deps[ok]))
    for j in (failed, crashed, recovered, canceled):
        assert r.ttl(keys.pending(deps[j])) > 0 and r.ttl(keys.dependencies(deps[j])) > 0
    # `any` edges: met by every end; one still waits
    assert status(r, anyway) == "deferred" and r.hget(keys.job(anyway), "jobengine_pending") == b"1"
    assert scripts.parse_change(s.cancel(args=scripts.cancel_args(
        job_id=anyway, now=time.time(), stamp=utcnow_str(), message="", owner="", token="t2")))[0] == "canceled"
    assert r.zcard(keys.deferred_registry(Q)) == 0
    assert r.ttl(keys.pending(anyway)) > 0 and r.ttl(keys.dependencies(anyway)) > 0


def test_a_job_without_dependents_is_untouched(r) -> None:  # type: ignore[no-untyped-def]
    s = Scripts.register(r)
    r.delete(keys.queue(Q))
    j = new_job_id()
    write(s, [node(j)])
    claim(s, "p1")
    complete(s, j, "p1")
    assert not r.exists(keys.dependents(j))
    assert {k.decode() for k in r.hkeys(keys.job(j))} >= {"status"}
    assert not any(k.startswith(b"jobengine_pending") for k in r.hkeys(keys.job(j)))


def test_a_flow_counts_its_end_once(r) -> None:  # type: ignore[no-untyped-def]
    s = Scripts.register(r)
    r.delete(keys.queue(Q), keys.FLOW_OUTCOMES)
    a, b, f = new_job_id(), new_job_id(), new_job_id()
    reply = write(s, [node(a), node(b, [(a, "success")])], flow_id=f)
    assert reply.statuses == ("queued", "deferred")
    assert write(s, [node(a), node(b, [(a, "success")])], flow_id=f).code == 1  # a repeat writes nothing
    assert r.llen(keys.queue(Q)) == 1
    claim(s, "f1")
    complete(s, a, "f1")
    claim(s, "f2")
    complete(s, b, "f2")
    assert r.hget(keys.flow(f), "state") == b"succeeded"
    assert r.hget(keys.FLOW_OUTCOMES, "succeeded") == b"1"
    assert r.ttl(keys.flow(f)) > 0


def requeue(s: Scripts, job_id: str) -> tuple[str, str]:
    return scripts.parse_change(s.requeue(args=scripts.requeue_args(job_id=job_id, stamp=utcnow_str(), owner="",
                                                                    token=new_job_id())))


def test_retry_revives_and_rechecks(r) -> None:  # type: ignore[no-untyped-def]
    """A retried dependency revives the dependent its failure ended; the dependent counts its other
    dependencies as they ended meanwhile (an expired one: failed, so it never waits forever); a dependent
    retried while a required dependency is failed ends again at once."""
    s = Scripts.register(r)
    r.delete(keys.queue(Q))
    a, c, b = new_job_id(), new_job_id(), new_job_id()
    write(s, [node(a)])
    write(s, [node(c)])
    write(s, [node(b, [(a, "success"), (c, "success")])])
    claim(s, "r1")
    complete(s, a, "r1", "failed")
    assert status(r, b) == "failed" and r.hget(keys.job(b), "jobengine_ended_by") == a.encode()
    complete(s, c, "r1")  # ends while b is ended: b's edge to c stays pending
    assert requeue(s, a) == ("queued", "queued")
    assert status(r, b) == "deferred"  # revived; c counted as finished
    assert r.hget(keys.job(b), "jobengine_pending") == b"1"
    assert r.zscore(f"rq:failed:{Q}", b) is None and r.ttl(keys.job(b)) == -1
    assert r.ttl(keys.pending(b)) == -1 and r.ttl(keys.dependencies(b)) == -1  # waiting again: kept
    # b retried by hand while its required dependency a is failed: it ends again at once
    claim(s, "r2")
    complete(s, a, "r2", "failed")
    assert status(r, b) == "failed"
    r.delete(keys.queue(Q))
    assert requeue(s, b) == ("queued", "failed")  # (the script answers the status it left: failed again)
    assert status(r, b) == "failed"
    assert requeue(s, a) == ("queued", "queued")  # a retried (not yet ended): b waits for it, deferred
    assert status(r, b) == "deferred" and r.llen(keys.queue(Q)) == 1  # only a is queued
    # c expires; b failed again by a, then a retried: b's edge to c is unknown -> failed, not a hang
    claim(s, "r3")
    complete(s, a, "r3", "failed")
    r.delete(keys.job(c))
    r.delete(keys.queue(Q))
    r.hset(keys.pending(b), c, "success")  # (as if c had ended while b was ended)
    assert requeue(s, a) == ("queued", "queued")
    assert status(r, b) == "failed" and r.hget(keys.job(b), "jobengine_ended_by") == c.encode()
