"""The executor process's protocol, on a real spawned executor: the cancel handshake's timing windows the
worker tests only hit by chance (a cancel signal landing just before the job starts, or just after it ended),
and batches: reports, the journal that outlives the process, and a stop (freeze) that no job of the batch
can slip past."""

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
def ex() -> Iterator[tuple[object, executor.Control, int]]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    control = executor.Control(ctx)
    control.allow(1_000)
    proc = ctx.Process(target=executor.main, args=(child, control), daemon=True)
    proc.start()
    child.close()
    ready = orjson.loads(parent.recv_bytes())
    yield parent, control, int(ready[1])
    proc.kill()
    proc.join(5)


def job(number: int, seconds: float, timeout: int = 30) -> list:  # type: ignore[type-arg]
    return [f"job-{number}", "sleep", SLEEP, {"seconds": seconds}, timeout, 1, "default", None, number]


def answer(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
    assert conn.poll(20), "executor did not answer"
    return orjson.loads(conn.recv_bytes())


def run(conn, number: int, seconds: float) -> list:  # type: ignore[no-untyped-def,type-arg]
    """One job alone; its [id, kind, value, seconds]."""
    conn.send_bytes(orjson.dumps([job(number, seconds)]))
    (result,) = answer(conn)
    assert result[0] == number
    return result[1:]


def test_cancel_signalled_before_the_job_starts_still_cancels_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    control.cancel(1)
    os.kill(pid, signal.SIGUSR1)  # lands while the executor waits for its next job: ignored, but remembered
    time.sleep(0.2)
    started = time.monotonic()
    job_id, kind, _, _ = run(conn, 1, 10)
    assert (job_id, kind) == ("job-1", "canceled")
    assert time.monotonic() - started < 5


def test_late_cancel_of_a_finished_job_does_not_cancel_the_next(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    assert run(conn, 1, 0)[1] == "ok"
    control.cancel(1)  # job 1 is already done when its cancel lands
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.2)
    assert run(conn, 2, 0.2)[1] == "ok"


def test_cancel_of_the_running_job_stops_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    conn.send_bytes(orjson.dumps([job(1, 30, timeout=60)]))
    time.sleep(0.5)
    assert control.running() is not None and control.running()[0] == 1  # type: ignore[index]
    control.cancel(1)
    os.kill(pid, signal.SIGUSR1)
    assert conn.poll(5), "the running job was not stopped"
    assert orjson.loads(conn.recv_bytes())[0][2] == "canceled"
    assert control.running() is None


def test_a_batch_of_fast_jobs_is_answered_in_one_report(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(n, 0) for n in range(1, 51)]))
    results = answer(conn)
    assert [r[0] for r in results] == list(range(1, 51))
    assert {r[2] for r in results} == {"ok"}
    assert not conn.poll(0.2), "more than one report for a batch of fast jobs"
    assert control.started() == 50 and control.running() is None


def test_a_slow_job_is_reported_as_it_ends_not_with_its_batch(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0.1), job(2, 1.5), job(3, 0)]))
    assert [(r[0], r[2]) for r in answer(conn)] == [(1, "ok")]
    time.sleep(0.5)
    assert control.running() is not None and control.running()[0] == 2  # type: ignore[index]
    assert [r[0] for r in answer(conn)] == [2]
    assert [r[0] for r in answer(conn)] == [3]


def test_freeze_lets_the_running_job_finish_and_skips_the_rest(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0.5), job(3, 0), job(4, 0)]))
    deadline = time.monotonic() + 10
    while control.started() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.freeze() == 2  # job 2 runs: it may finish, 3 and 4 must never start
    results = answer(conn)
    while results[-1][0] != 4:
        results += answer(conn)
    assert [(r[0], r[2]) for r in results] == [(1, "ok"), (2, "ok"), (3, "skipped"), (4, "skipped")]
    assert control.started() == 2


def test_the_journal_keeps_the_outcomes_of_a_killed_executor(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0), job(3, 30, timeout=60), job(4, 0)]))
    deadline = time.monotonic() + 10
    while (control.running() or (0,))[0] != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)  # job 3 runs; 1 and 2 ended a moment ago, not reported yet
    with pytest.raises(EOFError):  # nothing was reported
        conn.recv_bytes()
    assert [(r[0], r[1], r[2]) for r in control.journaled()] == [(1, "job-1", "ok"), (2, "job-2", "ok")]
    assert control.started() == 3 and control.running() is not None and control.running()[0] == 3  # type: ignore[index]


def test_a_report_clears_the_journal(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0)]))
    assert [r[0] for r in answer(conn)] == [1, 2]
    time.sleep(0.1)
    assert control.journaled() == []
