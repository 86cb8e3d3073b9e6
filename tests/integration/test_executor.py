"""The executor process's cancel handshake, on a real spawned executor: the timing windows the worker
tests only hit by chance (a cancel signal landing just before the job starts, or just after it ended)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator

import orjson
import pytest

from jobengine_worker import executor

SLEEP = "jobengine_worker.jobs.builtin.sleep"


@pytest.fixture()
def ex() -> Iterator[tuple[object, object, int]]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    seq = ctx.RawValue("Q", 0)
    proc = ctx.Process(target=executor.main, args=(child, seq), daemon=True)
    proc.start()
    child.close()
    ready = orjson.loads(parent.recv_bytes())
    yield parent, seq, int(ready[1])
    proc.kill()
    proc.join(5)


def run(conn, number: int, seconds: float) -> list:  # type: ignore[no-untyped-def]
    conn.send_bytes(orjson.dumps([f"job-{number}", "sleep", SLEEP, {"seconds": seconds}, 30, 1, "default", None,
                                  number]))
    assert conn.poll(20), "executor did not answer"
    return orjson.loads(conn.recv_bytes())


def test_cancel_signalled_before_the_job_starts_still_cancels_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, seq, pid = ex
    seq.value = 1
    os.kill(pid, signal.SIGUSR1)  # lands while the executor waits for its next job: ignored, but remembered
    time.sleep(0.2)
    started = time.monotonic()
    job_id, kind, _, _ = run(conn, 1, 10)
    assert (job_id, kind) == ("job-1", "canceled")
    assert time.monotonic() - started < 5


def test_late_cancel_of_a_finished_job_does_not_cancel_the_next(ex) -> None:  # type: ignore[no-untyped-def]
    conn, seq, pid = ex
    assert run(conn, 1, 0)[1] == "ok"
    seq.value = 1  # job 1 is already done when its cancel lands
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.2)
    assert run(conn, 2, 0.2)[1] == "ok"


def test_cancel_of_the_running_job_stops_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, seq, pid = ex
    conn.send_bytes(orjson.dumps(["job-1", "sleep", SLEEP, {"seconds": 30}, 60, 1, "default", None, 1]))
    time.sleep(0.5)
    seq.value = 1
    os.kill(pid, signal.SIGUSR1)
    assert conn.poll(5), "the running job was not stopped"
    assert orjson.loads(conn.recv_bytes())[1] == "canceled"
